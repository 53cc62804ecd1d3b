//! A protocol probe for the gateway's stream tests, not a fake of any Rill function: it
//! appends every event it gets (`{"Records":[...]}`) as one JSON line to `$PROBE_LOG`, and
//! fails the invocation when a record's new image has `fail: true`, so the tests can see
//! batches, order and retries as the function would.

use std::io::Write as _;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let event = event.payload;
    if let Ok(path) = std::env::var("PROBE_LOG") {
        let mut line = event.to_string();
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(line.as_bytes())?;
    }
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    if records
        .iter()
        .any(|r| r["dynamodb"]["NewImage"]["fail"]["BOOL"] == json!(true))
    {
        return Err("asked to fail".into());
    }
    Ok(json!({}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
