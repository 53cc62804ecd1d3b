//! Lambda `streams-hls`: `GET /api/streams/{id}/hls`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_hls()
}
