//! Lambda `streams-analytics`: `GET /api/streams/{id}/analytics` (JSON or CSV).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_analytics()
}
