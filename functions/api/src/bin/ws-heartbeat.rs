//! Lambda `ws-heartbeat`: WebSocket route `heartbeat`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::heartbeat).await
}
