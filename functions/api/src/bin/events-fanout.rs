//! Lambda `events-fanout`: the table's DynamoDB stream -> `stream:*` events to sockets.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::events_fanout()
}
