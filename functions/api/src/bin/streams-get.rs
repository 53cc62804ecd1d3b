//! Lambda `streams-get`: `GET /api/streams/{id}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_get()
}
