//! Lambda `events-presence`: the table's DynamoDB stream -> joins, leaves and paced viewer counts.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::events_presence()
}
