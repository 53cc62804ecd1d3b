//! Lambda `ws-default`: WebSocket route `$default`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_default()
}
