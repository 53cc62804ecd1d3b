//! Lambda `streams-end`: `POST /api/streams/{id}/end`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_end()
}
