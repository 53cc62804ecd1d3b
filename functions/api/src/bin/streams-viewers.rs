//! Lambda `streams-viewers`: `GET /api/streams/{id}/viewers`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_viewers()
}
