//! Lambda `ws-question`: WebSocket route `question`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::question).await
}
