//! Lambda `chat-list`: `GET /api/streams/{id}/chat`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::chat::list).await
}
