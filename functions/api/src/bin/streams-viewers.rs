//! Lambda `streams-viewers`: `GET /api/streams/{id}/viewers`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::viewers).await
}
