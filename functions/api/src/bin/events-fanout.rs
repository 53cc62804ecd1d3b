//! Lambda `events-fanout`: the table's DynamoDB stream -> `stream:*` events to sockets.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::runtime::run_stream(rill_api::fanout::handle).await
}
