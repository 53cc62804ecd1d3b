//! Lambda `ws-connect`: WebSocket route `$connect`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_connect()
}
