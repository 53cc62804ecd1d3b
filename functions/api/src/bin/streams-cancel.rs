//! Lambda `streams-cancel`: `POST /api/streams/{id}/cancel`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_cancel()
}
