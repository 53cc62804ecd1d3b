//! Lambda `chat-delete`: `DELETE /api/streams/{id}/chat/{msgId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::chat_delete()
}
