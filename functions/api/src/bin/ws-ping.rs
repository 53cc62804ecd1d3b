//! Lambda `ws-ping`: WebSocket route `ping`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::ping).await
}
