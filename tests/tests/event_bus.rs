//! Feed events on EventBridge, against moto's EventBridge: `webhooks-dispatch` puts every
//! event of a stream's life on the bus named by `EVENT_BUS_NAME`, `Source: rill`, typed by
//! event type, with the channel, stream and sequence number in `detail`; a rule routes them
//! to an SQS queue, where the test reads them back (boto3, not our code).

use std::process::Command;
use std::time::{Duration, Instant};

use rill_tests::{Stack, User, moto_python};
use serde_json::{Value, json};

const SETUP: &str = r#"
import boto3, json, sys
url, bus, queue = sys.argv[1:4]
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
          aws_secret_access_key="test")
events, sqs = boto3.client("events", **kw), boto3.client("sqs", **kw)
events.create_event_bus(Name=bus)
q = sqs.create_queue(QueueName=queue)["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.put_rule(Name="rill-feed", EventBusName=bus, EventPattern=json.dumps({"source": ["rill"]}))
events.put_targets(Rule="rill-feed", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
print(q)
"#;

const DRAIN: &str = r#"
import boto3, json, sys
url, queue = sys.argv[1:3]
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
          aws_secret_access_key="test")
sqs = boto3.client("sqs", **kw)
out = []
while True:
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    if not got:
        break
    for m in got:
        out.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(out))
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(moto_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn every_feed_event_of_a_stream_reaches_the_event_bus_with_its_sequence_number() {
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let bus = format!("rill-{suffix}");
    let moto = rill_tests::moto_url();
    let queue = python(SETUP, &[&moto, &bus, &format!("feed-{suffix}")]);
    let stack = Stack::start_with(&[("EVENT_BUS_NAME", &bus)]);
    let owner = User::named("bus-owner");
    let id = stack
        .live_stream(&owner, "bussed", "Bussed", json!({}))
        .await;
    for text in ["one", "two"] {
        let r = owner
            .post(
                &stack,
                &format!("/api/streams/{id}/chat"),
                json!({"content": text}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: Vec<Value> = Vec::new();
    loop {
        let batch: Vec<Value> =
            serde_json::from_str(&python(DRAIN, &[&moto, &queue])).expect("json");
        got.extend(batch);
        if got.iter().any(|m| m["detail-type"] == "stream:end") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stream:end on the bus: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = owner
        .get(
            &stack,
            &format!("/api/streams/{id}/events?after=0&limit=100"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let feed = r.body["items"].as_array().expect("items").clone();

    // At least once: de-duplicated by seq, the bus carried exactly the feed.
    let mut details: Vec<Value> = got.iter().map(|m| m["detail"].clone()).collect();
    details.sort_by_key(|d| d["seq"].as_u64());
    details.dedup_by_key(|d| d["seq"].as_u64());
    assert_eq!(details.len(), feed.len(), "{details:?}");
    for (detail, event) in details.iter().zip(&feed) {
        assert_eq!(detail["seq"], event["seq"]);
        assert_eq!(detail["type"], event["type"]);
        assert_eq!(detail["streamId"], id.as_str());
        assert_eq!(detail["channelId"], "bussed");
        assert_eq!(detail["data"], event["data"]);
        assert_eq!(detail["ts"], event["ts"]);
    }
    for m in &got {
        assert_eq!(m["source"], "rill");
        assert_eq!(m["detail-type"], m["detail"]["type"]);
    }
    let texts: Vec<&str> = details
        .iter()
        .filter(|d| d["type"] == "stream:chat-message")
        .map(|d| d["data"]["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        texts,
        ["one", "two"],
        "chat text joined as the feed shows it"
    );
}
