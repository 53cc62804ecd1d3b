//! Lambda `streams-events`: `GET /api/streams/{id}/events`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_events()
}
