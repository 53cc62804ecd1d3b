//! Lambda `streams-metrics`: `GET /api/streams/{id}/metrics`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::metrics::list).await
}
