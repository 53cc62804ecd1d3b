//! Lambda `ws-disconnect`: WebSocket route `$disconnect`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_disconnect()
}
