//! Lambda `ws-question`: WebSocket route `question`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_question()
}
