//! Lambda `ws-ping`: WebSocket route `ping`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_ping()
}
