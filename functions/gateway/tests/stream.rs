//! The DynamoDB stream event source mapping end to end: a real moto server (its DynamoDB
//! and DynamoDB Streams; see `common::Moto`), the real gateway creating the table
//! (`--init-resources`) and polling its stream, and the `stream_probe` example as the
//! function, which logs every batch it gets.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{Gateway, Moto, examples_dir, temp_dir};
use serde_json::Value;

fn template(batch_size: u32, window_s: u32, retries: i32) -> String {
    format!(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  StreamsTable:
    Type: AWS::DynamoDB::Table
  StreamProbeFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: stream_probe
    Properties:
      Handler: bootstrap
      Timeout: 5
      Events:
        TableStream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt StreamsTable.StreamArn
            StartingPosition: LATEST
            BatchSize: {batch_size}
            MaximumBatchingWindowInSeconds: {window_s}
            MaximumRetryAttempts: {retries}
"#
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

struct Stack {
    gateway: Gateway,
    log: PathBuf,
    table: String,
    db: aws_sdk_dynamodb::Client,
    // Last: moto outlives the gateway.
    _moto: Moto,
}

impl Stack {
    async fn start(template: &str, extra: &[(&str, &str)]) -> Self {
        Self::start_in(template, &examples_dir(&["stream_probe"]), extra).await
    }

    /// [`Stack::start`] with the function binaries of `functions`.
    async fn start_in(template: &str, functions: &Path, extra: &[(&str, &str)]) -> Self {
        let moto = Moto::start();
        let table = unique("rill-stream-test");
        let bucket = unique("rill-stream-test");
        let log = temp_dir().join("batches.jsonl");
        let log_text = log.display().to_string();
        let mut env = vec![
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("TABLE_NAME", table.as_str()),
            ("BUCKET_NAME", bucket.as_str()),
            ("PROBE_LOG", log_text.as_str()),
            ("GATEWAY_INIT_RESOURCES", "1"),
        ];
        env.extend_from_slice(extra);
        let gateway = Gateway::start(template, functions, &env).expect("gateway starts");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "t",
            ))
            .endpoint_url(&moto.url)
            .load()
            .await;
        Self {
            gateway,
            log,
            table,
            db: aws_sdk_dynamodb::Client::new(&config),
            _moto: moto,
        }
    }

    fn mapping(&self) -> Value {
        self.gateway.stats()["event_source_mappings"][0].clone()
    }

    async fn wait_for_mapping(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mapping = self.mapping();
            if pred(&mapping) {
                return mapping;
            }
            assert!(
                Instant::now() < deadline,
                "mapping never {what}: {mapping:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Batches the function received so far.
    fn batches(&self) -> Vec<Value> {
        read_batches(&self.log)
    }

    async fn wait_for_records(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let batches = self.batches();
            let got: usize = batches.iter().map(|b| records(b).len()).sum();
            if got >= count {
                return batches;
            }
            assert!(
                Instant::now() < deadline,
                "{got} of {count} records delivered: {batches:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn put(&self, sk: &str, extra: Option<(&str, AttributeValue)>) {
        let mut put = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S("PART#1".into()))
            .item("sk", AttributeValue::S(sk.into()));
        if let Some((name, value)) = extra {
            put = put.item(name, value);
        }
        put.send().await.expect("put item");
    }
}

fn read_batches(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("probe writes JSON lines"))
        .collect()
}

fn records(batch: &Value) -> Vec<Value> {
    batch["Records"].as_array().cloned().unwrap_or_default()
}

fn sk(record: &Value) -> String {
    record["dynamodb"]["Keys"]["sk"]["S"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn table_stream_records_reach_the_function_in_ordered_batches() {
    let stack = Stack::start(&template(10, 1, 1), &[]).await;
    // Iterators from LATEST exist once a shard is being read; only then is a write
    // guaranteed to be seen.
    let mapping = stack
        .wait_for_mapping("reading a shard", |m| {
            m["state"] == "polling" && m["shards"].as_u64() >= Some(1)
        })
        .await;
    assert!(
        mapping["stream_arn"]
            .as_str()
            .is_some_and(|arn| arn.contains(&stack.table))
    );

    for i in 0..25 {
        stack
            .put(
                &format!("ITEM#{i:02}"),
                Some(("n", AttributeValue::N(i.to_string()))),
            )
            .await;
    }
    let batches = stack.wait_for_records(25).await;

    let mut all = Vec::new();
    for batch in &batches {
        // Exactly Lambda's event: the Rust runtime's type parses it.
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(batch.clone()).expect("a Lambda DynamoDB event");
        assert!(
            !event.records.is_empty() && event.records.len() <= 10,
            "BatchSize 10: {}",
            event.records.len()
        );
        for r in &event.records {
            assert_eq!(r.event_name, "INSERT");
            assert_eq!(r.event_version.as_deref(), Some("1.1"));
            assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
            assert_eq!(
                r.event_source_arn.as_deref(),
                mapping["stream_arn"].as_str()
            );
            assert!(r.change.approximate_creation_date_time.timestamp() > 1_600_000_000);
            assert!(r.change.new_image.inner().contains_key("n"));
        }
        all.extend(records(batch));
    }
    let keys: Vec<String> = all.iter().map(sk).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("ITEM#{i:02}")).collect();
    assert_eq!(
        keys, expected,
        "one shard's records arrive in order, each once"
    );
    let sequence: Vec<u128> = all
        .iter()
        .map(|r| {
            r["dynamodb"]["SequenceNumber"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("sequence number")
        })
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]));
    assert!(
        batches.len() < 25,
        "records written together are batched: {} batches",
        batches.len()
    );

    // MODIFY and REMOVE carry the old image (NEW_AND_OLD_IMAGES).
    stack
        .put("ITEM#00", Some(("n", AttributeValue::N("100".into()))))
        .await;
    stack
        .db
        .delete_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S("PART#1".into()))
        .key("sk", AttributeValue::S("ITEM#01".into()))
        .send()
        .await
        .expect("delete item");
    let batches = stack.wait_for_records(27).await;
    let tail: Vec<Value> = batches.iter().flat_map(records).skip(25).collect();
    assert_eq!(tail[0]["eventName"], "MODIFY");
    assert_eq!(tail[0]["dynamodb"]["OldImage"]["n"]["N"], "0");
    assert_eq!(tail[0]["dynamodb"]["NewImage"]["n"]["N"], "100");
    assert_eq!(tail[1]["eventName"], "REMOVE");
    assert_eq!(tail[1]["dynamodb"]["OldImage"]["sk"]["S"], "ITEM#01");
    assert!(tail[1]["dynamodb"].get("NewImage").is_none());

    let mapping = stack.mapping();
    assert_eq!(mapping["records"], 27);
    assert_eq!(mapping["batches"].as_u64(), Some(batches.len() as u64));
    assert_eq!(mapping["failures"], 0);
    assert!(
        mapping["last_lag_ms"]
            .as_u64()
            .is_some_and(|lag| lag < 30_000),
        "{mapping}"
    );

    let status = stack.gateway.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_batches_are_retried_then_skipped_and_later_records_still_flow() {
    let stack = Stack::start(&template(100, 0, 1), &[]).await;
    stack
        .wait_for_mapping("reading a shard", |m| m["shards"].as_u64() >= Some(1))
        .await;

    stack
        .put("BAD", Some(("fail", AttributeValue::Bool(true))))
        .await;
    let mapping = stack
        .wait_for_mapping("skipping the failed batch", |m| m["skipped_batches"] == 1)
        .await;
    assert_eq!(mapping["failures"], 2, "the first attempt and one retry");
    assert_eq!(mapping["retries"], 1);
    assert_eq!(mapping["skipped_records"], 1);
    assert_eq!(mapping["batches"], 0);

    stack.put("GOOD", None).await;
    let batches = stack.wait_for_records(3).await;
    let keys: Vec<String> = batches.iter().flat_map(records).map(|r| sk(&r)).collect();
    assert_eq!(
        keys,
        ["BAD", "BAD", "GOOD"],
        "two attempts at BAD, then GOOD"
    );
    let mapping = stack.mapping();
    assert_eq!(
        (mapping["batches"].as_u64(), mapping["records"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_poller_can_be_turned_off() {
    let dir = temp_dir();
    let log = dir.join("batches.jsonl").display().to_string();
    let gateway = Gateway::start(
        &template(10, 0, 0),
        &examples_dir(&["stream_probe"]),
        &[("GATEWAY_STREAM_POLLER", "0"), ("PROBE_LOG", &log)],
    )
    .expect("gateway starts without moto");
    let mapping = gateway.stats()["event_source_mappings"][0].clone();
    assert_eq!(mapping["function"], "stream_probe");
    assert_eq!(mapping["event"], "TableStream");
    assert_eq!(mapping["state"], "disabled");
    assert_eq!(mapping["batch_size"], 10);
    assert_eq!(mapping["maximum_retry_attempts"], 0);
}

/// Two mappings on one table: `stream_probe` without a filter, retrying forever, and
/// `filtered_probe` (the same probe under another name) passing only `KEEP#` items. Both
/// log to the one `PROBE_LOG` (the gateway's environment wins over the template's).
fn two_mappings() -> String {
    let probe = |resource: &str, binary: &str, extra: &str| {
        format!(
            r#"
  {resource}:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: {binary}
    Properties:
      Handler: bootstrap
      Timeout: 5
{extra}      Events:
        TableStream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt StreamsTable.StreamArn
            StartingPosition: LATEST
            BatchSize: 100
            MaximumRetryAttempts: -1
"#
        )
    };
    let mut template = String::from(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  StreamsTable:\n    Type: AWS::DynamoDB::Table\n",
    );
    template.push_str(&probe("StreamProbeFunction", "stream_probe", ""));
    template.push_str(&probe("FilteredProbeFunction", "filtered_probe", ""));
    template.push_str(
        "            FilterCriteria:\n              Filters:\n                - Pattern: '{\"dynamodb\": {\"Keys\": {\"sk\": {\"S\": [{\"prefix\": \"KEEP#\"}]}}}}'\n",
    );
    template
}

#[tokio::test(flavor = "multi_thread")]
async fn mappings_sharing_a_stream_filter_and_fail_independently() {
    // Both functions are the probe; the gateway finds a function by its binary's name.
    let functions = temp_dir();
    let probe = examples_dir(&["stream_probe"]).join("stream_probe");
    for name in ["stream_probe", "filtered_probe"] {
        std::os::unix::fs::symlink(&probe, functions.join(name)).expect("link the probe");
    }
    let stack = Stack::start_in(&two_mappings(), &functions, &[]).await;
    let by_function = |name: &str| -> Value {
        stack.gateway.stats()["event_source_mappings"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["function"] == name).cloned())
            .expect("mapping listed")
    };
    stack
        .wait_for_mapping("reading a shard", |m| m["shards"].as_u64() >= Some(1))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while by_function("filtered_probe")["shards"].as_u64() < Some(1) {
        assert!(
            Instant::now() < deadline,
            "the filtered mapping never reads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The unfiltered mapping is stuck on BAD (retried until it succeeds, which it never
    // does); the filtered one never sees BAD or DROP# and gets KEEP# in order meanwhile.
    stack
        .put("BAD", Some(("fail", AttributeValue::Bool(true))))
        .await;
    for sk in ["KEEP#1", "DROP#1", "KEEP#2"] {
        stack.put(sk, None).await;
    }
    // The stuck probe's batches all start with BAD; the others are the filtered probe's.
    let deadline = Instant::now() + Duration::from_secs(20);
    let kept = loop {
        let keys: Vec<String> = stack
            .batches()
            .iter()
            .map(records)
            .filter(|batch| batch.first().map(sk).as_deref() != Some("BAD"))
            .flatten()
            .map(|r| sk(&r))
            .collect();
        if keys.len() >= 2 || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        kept,
        ["KEEP#1", "KEEP#2"],
        "only what the filter passes, in order"
    );
    let filtered = by_function("filtered_probe");
    assert_eq!(
        filtered["filtered_records"], 2,
        "BAD and DROP#1: {filtered:#}"
    );
    assert_eq!(filtered["failures"], 0);
    let stuck = by_function("stream_probe");
    assert!(stuck["failures"].as_u64() >= Some(1), "{stuck:#}");
    assert_eq!(stuck["batches"], 0, "still retrying BAD: {stuck:#}");
    assert_eq!(stuck["filtered_records"], 0);
}
