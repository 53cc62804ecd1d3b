//! Lambda `streams-start`: `POST /api/streams/{id}/start`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_start()
}
