//! Lambda `streams-hls`: `GET /api/streams/{id}/hls`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::hls).await
}
