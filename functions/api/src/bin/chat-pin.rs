//! Lambda `chat-pin`: `POST /api/streams/{id}/chat/{msgId}/pin`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::chat::pin).await
}
