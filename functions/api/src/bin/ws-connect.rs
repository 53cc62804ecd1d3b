//! Lambda `ws-connect`: WebSocket route `$connect`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::connect).await
}
