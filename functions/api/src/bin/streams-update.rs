//! Lambda `streams-update`: `PATCH /api/streams/{id}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_update()
}
