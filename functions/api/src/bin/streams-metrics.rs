//! Lambda `streams-metrics`: `GET /api/streams/{id}/metrics`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_metrics()
}
