//! Reading the table's DynamoDB stream the way Lambda's event source mapping does, one
//! SDK call at a time: find the stream, list its shards, get iterators, get records, and
//! turn each SDK record into Lambda's DynamoDB event JSON.
//!
//! The local gateway's poller (`rill-gateway`'s `event_source`) owns the policy (when to
//! poll, batching, retries, ordering across shards); this module owns every DynamoDB
//! Streams type, so the gateway names no `aws-sdk-*` type.
//!
//! Invariants:
//! - [`lambda_record`] writes exactly Lambda's record layout (`eventName`, `dynamodb.Keys`,
//!   `NewImage`/`OldImage` as DynamoDB JSON with binaries in base64, whole-second
//!   `ApproximateCreationDateTime`, `eventVersion` 1.1), so the functions parse the same
//!   bytes locally and on AWS;
//! - failures the poller must react to differently are told apart ([`ReadError`]); every
//!   other failure is a message for the logs.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::{AwsError, SdkConfig};

/// The table's stream, through the DynamoDB and DynamoDB Streams APIs.
#[derive(Debug, Clone)]
pub struct TableStream {
    db: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    /// Put into records that carry no region of their own (moto's).
    region: String,
}

/// One shard and the shard it was split from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parent: Option<String>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Latest,
    TrimHorizon,
    /// Right after a record already read (renewing an expired iterator).
    After(String),
}

/// One record, as Lambda would deliver it, with what the poller needs to know about it.
#[derive(Debug, Clone)]
pub struct PolledRecord {
    /// The record in Lambda's DynamoDB event format.
    pub lambda: Value,
    pub sequence_number: Option<String>,
    /// `ApproximateCreationDateTime`, epoch ms.
    pub created_ms: Option<i64>,
}

/// One `GetRecords` answer.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<PolledRecord>,
    /// `None`: the shard is closed and this was its last page.
    pub next_iterator: Option<String>,
}

/// Why `GetRecords` failed, as far as the reader has to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Renew the iterator after the last record read (or from the start position).
    ExpiredIterator,
    /// The position fell off the stream's 24 h: start again from the oldest record.
    Trimmed,
    /// The shard no longer exists.
    ShardGone,
    /// Anything else (endpoint down, throttled): retry later.
    Other(String),
}

impl TableStream {
    pub fn new(sdk: &SdkConfig, region: impl Into<String>) -> TableStream {
        TableStream {
            db: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            region: region.into(),
        }
    }

    /// The table's current stream; `None` when the table streams nothing.
    pub async fn latest_stream_arn(&self, table: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .db
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&format!("DescribeTable {table}"), e))?;
        let table = out.table();
        let enabled = table
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        Ok(table
            .and_then(|t| t.latest_stream_arn())
            .filter(|_| enabled)
            .map(str::to_owned))
    }

    /// Every shard of the stream, parents before children (the order DynamoDB lists them).
    pub async fn shards(&self, stream_arn: &str) -> Result<Vec<Shard>, AwsError> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let resp = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| AwsError(DisplayErrorContext(e).to_string()))?;
            let Some(description) = resp.stream_description() else {
                break;
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    out.push(Shard {
                        id: id.to_owned(),
                        parent: shard.parent_shard_id().map(str::to_owned),
                    });
                }
            }
            match description.last_evaluated_shard_id() {
                Some(last) if start.as_deref() != Some(last) => start = Some(last.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// An iterator on `shard_id`; `Ok(None)` when the shard is gone.
    pub async fn iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        position: &Position,
    ) -> Result<Option<String>, AwsError> {
        let (kind, after) = match position {
            Position::Latest => (ShardIteratorType::Latest, None),
            Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        let result = self
            .streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(after)
            .send()
            .await;
        match result {
            Ok(r) => Ok(r.shard_iterator().map(str::to_owned)),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    Ok(None)
                } else {
                    Err(AwsError(DisplayErrorContext(&e).to_string()))
                }
            }
        }
    }

    /// Up to `limit` records from `iterator`, each already in Lambda's format.
    pub async fn records(
        &self,
        stream_arn: &str,
        iterator: &str,
        limit: usize,
    ) -> Result<Page, ReadError> {
        let response = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(1000))
            .send()
            .await;
        match response {
            Ok(r) => Ok(Page {
                records: r
                    .records()
                    .iter()
                    .map(|record| PolledRecord {
                        lambda: lambda_record(record, stream_arn, &self.region),
                        sequence_number: record
                            .dynamodb()
                            .and_then(|d| d.sequence_number())
                            .map(str::to_owned),
                        created_ms: record
                            .dynamodb()
                            .and_then(|d| d.approximate_creation_date_time())
                            .and_then(|t| t.to_millis().ok()),
                    })
                    .collect(),
                next_iterator: r.next_shard_iterator().map(str::to_owned),
            }),
            Err(e) => {
                let e = e.into_service_error();
                Err(if e.is_expired_iterator_exception() {
                    ReadError::ExpiredIterator
                } else if e.is_trimmed_data_access_exception() {
                    ReadError::Trimmed
                } else if e.is_resource_not_found_exception() {
                    ReadError::ShardGone
                } else {
                    ReadError::Other(DisplayErrorContext(&e).to_string())
                })
            }
        }
    }
}

/// One record in Lambda's DynamoDB event format.
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let mut out = Map::new();
    out.insert("eventID".into(), json!(record.event_id()));
    out.insert(
        "eventName".into(),
        json!(record.event_name().map(|n| n.as_str())),
    );
    // Lambda reports 1.1 whatever the stream says (moto says 1.0).
    out.insert("eventVersion".into(), json!("1.1"));
    out.insert("eventSource".into(), json!("aws:dynamodb"));
    out.insert(
        "awsRegion".into(),
        json!(record.aws_region().unwrap_or(region)),
    );
    if let Some(d) = record.dynamodb() {
        let mut change = Map::new();
        if let Some(t) = d.approximate_creation_date_time() {
            // Lambda sends whole seconds.
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        if let Some(keys) = d.keys() {
            change.insert("Keys".into(), item_json(keys));
        }
        if let Some(image) = d.new_image() {
            change.insert("NewImage".into(), item_json(image));
        }
        if let Some(image) = d.old_image() {
            change.insert("OldImage".into(), item_json(image));
        }
        if let Some(seq) = d.sequence_number() {
            change.insert("SequenceNumber".into(), json!(seq));
        }
        change.insert("SizeBytes".into(), json!(d.size_bytes().unwrap_or(0)));
        if let Some(view) = d.stream_view_type() {
            change.insert("StreamViewType".into(), json!(view.as_str()));
        }
        out.insert("dynamodb".into(), Value::Object(change));
    }
    out.insert("eventSourceARN".into(), json!(stream_arn));
    if let Some(identity) = record.user_identity() {
        out.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    Value::Object(out)
}

/// An item as DynamoDB JSON (`{"attr": {"S": "..."}}`), binary values in base64.
fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let sorted: BTreeMap<&String, &AttributeValue> = item.iter().collect();
    Value::Object(
        sorted
            .into_iter()
            .filter_map(|(k, v)| attribute_json(v).map(|v| (k.clone(), v)))
            .collect(),
    )
}

fn attribute_json(value: &AttributeValue) -> Option<Value> {
    Some(match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": BASE64.encode(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| BASE64.encode(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::L(items) => {
            json!({ "L": items.iter().filter_map(attribute_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => json!({ "M": item_json(map) }),
        // A type newer than this SDK: leave the attribute out rather than guess.
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
