//! Lambda `ws-heartbeat`: WebSocket route `heartbeat`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_heartbeat()
}
