//! Lambda `chat-delete`: `DELETE /api/streams/{id}/chat/{msgId}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::chat::delete).await
}
