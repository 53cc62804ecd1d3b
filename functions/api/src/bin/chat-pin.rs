//! Lambda `chat-pin`: `POST /api/streams/{id}/chat/{msgId}/pin`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::chat_pin()
}
