//! Lambda `ws-chat`: WebSocket route `chat`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_chat()
}
