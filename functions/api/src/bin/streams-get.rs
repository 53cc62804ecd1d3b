//! Lambda `streams-get`: `GET /api/streams/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::get).await
}
