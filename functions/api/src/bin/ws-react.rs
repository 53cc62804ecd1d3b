//! Lambda `ws-react`: WebSocket route `react`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_react()
}
