//! Lambda `chat-send`: `POST /api/streams/{id}/chat`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::chat_send()
}
