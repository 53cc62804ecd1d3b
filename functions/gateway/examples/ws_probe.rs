//! A protocol probe for the gateway's WebSocket tests, not a fake of any Rill function: it
//! logs every event it gets (one JSON line per event in `$PROBE_LOG`) and answers through
//! the real Management API client, so the tests see what API Gateway would deliver.
//!
//! As the `$connect` authorizer (a `type: REQUEST` event), by query parameter: `deny=1`
//! answers a Deny policy, `unauth=1` fails with `Unauthorized`, `authfail=1` fails with
//! another error, `badctx=1` allows with a nested (invalid) context value; otherwise it
//! allows (a wildcard resource on the stage) with the context `{"user": "probe-user",
//! "streamId": <streamId>, "n": 7, "counted": true}` and principal `probe-user`.
//!
//! `$connect`: `?refuse=<status>` refuses with that status and the body `refused by
//! probe`; `?fail=1` makes the invocation fail; `?sleep=<ms>` accepts after that long.
//! Messages, by `action`: `sleep` (`{"ms":n}`, then a reply), `fail` (function error),
//! `status` (answers 500), `close` (deletes its own connection), anything else: a reply. A
//! reply is a frame with what the function saw: route key, body, base64 flag, ids,
//! `requestContext.authorizer` and its pid.

use std::io::Write as _;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

fn log_event(event: &Value) {
    if let Ok(path) = std::env::var("PROBE_LOG") {
        let mut line = event.to_string();
        line.push('\n');
        // One write per line, O_APPEND: lines from concurrent instances do not interleave.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

async fn handle(
    client: &aws_sdk_apigatewaymanagement::Client,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let event = event.payload;
    log_event(&event);
    if event["type"] == "REQUEST" {
        return authorize(&event);
    }
    let ctx = &event["requestContext"];
    let connection_id = ctx["connectionId"].as_str().unwrap_or_default().to_owned();
    let ok = json!({"statusCode": 200});
    match ctx["eventType"].as_str() {
        Some("CONNECT") => {
            let query = &event["queryStringParameters"];
            if query["fail"].is_string() {
                return Err("asked to fail the connection".into());
            }
            if let Some(status) = query["refuse"].as_str().and_then(|s| s.parse::<u16>().ok()) {
                return Ok(json!({"statusCode": status, "body": "refused by probe"}));
            }
            if let Some(ms) = query["sleep"].as_str().and_then(|s| s.parse::<u64>().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(ok)
        }
        Some("MESSAGE") => {
            let body = event["body"].as_str().unwrap_or_default();
            let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            match parsed["action"].as_str() {
                Some("fail") => return Err("asked to fail".into()),
                Some("status") => return Ok(json!({"statusCode": 500})),
                Some("close") => {
                    client
                        .delete_connection()
                        .connection_id(&connection_id)
                        .send()
                        .await?;
                    return Ok(ok);
                }
                Some("sleep") => {
                    let ms = parsed["ms"].as_u64().unwrap_or(100);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => {}
            }
            let reply = json!({
                "route": ctx["routeKey"],
                "body": event["body"],
                "isBase64Encoded": event["isBase64Encoded"],
                "connectionId": connection_id,
                "messageId": ctx["messageId"],
                "authorizer": ctx["authorizer"],
                "pid": std::process::id(),
            });
            client
                .post_to_connection()
                .connection_id(&connection_id)
                .data(Blob::new(reply.to_string()))
                .send()
                .await?;
            Ok(ok)
        }
        _ => Ok(ok),
    }
}

/// The `$connect` authorizer's answer (see the module docs).
fn authorize(event: &Value) -> Result<Value, Error> {
    let query = &event["queryStringParameters"];
    if query["unauth"].is_string() {
        return Err("Unauthorized".into());
    }
    if query["authfail"].is_string() {
        return Err("asked to fail the authorizer".into());
    }
    let method_arn = event["methodArn"].as_str().unwrap_or_default();
    let (effect, resource) = if query["deny"].is_string() {
        ("Deny", method_arn.to_owned())
    } else {
        // `.../local/live/$connect` -> `.../local/live/*`: the policy matches by wildcard.
        let stage = method_arn
            .rsplit_once('/')
            .map_or(method_arn, |(stage, _)| stage);
        ("Allow", format!("{stage}/*"))
    };
    let mut context = json!({
        "user": "probe-user",
        "streamId": query["streamId"].as_str().unwrap_or_default(),
        "n": 7,
        "counted": true,
    });
    if query["badctx"].is_string() {
        context["nested"] = json!({"not": "allowed"});
    }
    Ok(json!({
        "principalId": "probe-user",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::var("WS_MANAGEMENT_ENDPOINT")?;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = aws_sdk_apigatewaymanagement::Client::new(&config);
    let client = &client;
    run(service_fn(move |event| async move {
        handle(client, event).await
    }))
    .await
}
