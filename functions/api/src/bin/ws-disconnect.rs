//! Lambda `ws-disconnect`: WebSocket route `$disconnect`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_ws(rill_api::ws::disconnect).await
}
