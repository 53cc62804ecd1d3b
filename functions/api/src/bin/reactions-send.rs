//! Lambda `reactions-send`: `POST /api/streams/{id}/reactions`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::reactions::send).await
}
