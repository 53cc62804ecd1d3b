//! Lambda `ws-react`: WebSocket route `react`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::react).await
}
