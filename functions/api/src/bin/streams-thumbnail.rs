//! Lambda `streams-thumbnail`: `POST /api/streams/{id}/thumbnail`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_thumbnail()
}
