//! Lambda `streams-end`: `POST /api/streams/{id}/end`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::end).await
}
