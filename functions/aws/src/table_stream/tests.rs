//! SDK stream records in Lambda's DynamoDB event layout.

use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamRecord, StreamViewType};

use super::*;

fn sample_record() -> Record {
    let keys = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("STREAM#s1".into())),
        ("sk".to_owned(), AttributeValue::S("CHAT#01".into())),
    ]);
    let mut image = keys.clone();
    image.insert("n".into(), AttributeValue::N("3.5".into()));
    image.insert("b".into(), AttributeValue::B(Blob::new(vec![0, 1, 0xff])));
    image.insert("ok".into(), AttributeValue::Bool(true));
    image.insert("none".into(), AttributeValue::Null(true));
    image.insert(
        "tags".into(),
        AttributeValue::Ss(vec!["a".into(), "b".into()]),
    );
    image.insert("nums".into(), AttributeValue::Ns(vec!["1".into()]));
    image.insert("bins".into(), AttributeValue::Bs(vec![Blob::new(vec![7])]));
    image.insert(
        "list".into(),
        AttributeValue::L(vec![AttributeValue::S("x".into())]),
    );
    image.insert(
        "map".into(),
        AttributeValue::M(HashMap::from([(
            "inner".to_owned(),
            AttributeValue::N("1".into()),
        )])),
    );
    let mut old = keys.clone();
    old.insert("n".into(), AttributeValue::N("1".into()));
    Record::builder()
        .event_id("e1")
        .event_name(OperationType::Modify)
        .event_version("1.0")
        .event_source("aws:dynamodb")
        .aws_region("us-east-1")
        .user_identity(
            Identity::builder()
                .r#type("Service")
                .principal_id("dynamodb.amazonaws.com")
                .build(),
        )
        .dynamodb(
            StreamRecord::builder()
                .approximate_creation_date_time(DateTime::from_millis(1_700_000_000_750))
                .set_keys(Some(keys))
                .set_new_image(Some(image))
                .set_old_image(Some(old))
                .sequence_number("1100000000017454423009")
                .size_bytes(120)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build(),
        )
        .build()
}

const ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/rill/stream/2024-01-01T00:00:00.000";

#[test]
fn records_deserialize_as_lambda_dynamodb_events() {
    let record = lambda_record(&sample_record(), ARN, "eu-west-1");
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(json!({ "Records": [record] })).expect("a Lambda DynamoDB event");
    let r = &event.records[0];
    assert_eq!(r.event_id, "e1");
    assert_eq!(r.event_name, "MODIFY");
    assert_eq!(r.event_version.as_deref(), Some("1.1"));
    assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
    assert_eq!(r.aws_region, "us-east-1", "the record's region wins");
    assert_eq!(r.event_source_arn.as_deref(), Some(ARN));
    let c = &r.change;
    assert_eq!(c.approximate_creation_date_time.timestamp(), 1_700_000_000);
    assert_eq!(c.sequence_number.as_deref(), Some("1100000000017454423009"));
    assert_eq!(c.size_bytes, 120);
    assert_eq!(
        c.stream_view_type,
        Some(aws_lambda_events::event::dynamodb::StreamViewType::NewAndOldImages)
    );
    use serde_dynamo::AttributeValue as Av;
    let new = c.new_image.inner();
    assert_eq!(new["pk"], Av::S("STREAM#s1".into()));
    assert_eq!(new["n"], Av::N("3.5".into()));
    assert_eq!(new["b"], Av::B(vec![0, 1, 0xff]));
    assert_eq!(new["ok"], Av::Bool(true));
    assert_eq!(new["none"], Av::Null(true));
    assert_eq!(new["tags"], Av::Ss(vec!["a".into(), "b".into()]));
    assert_eq!(new["bins"], Av::Bs(vec![vec![7]]));
    assert_eq!(new["list"], Av::L(vec![Av::S("x".into())]));
    assert_eq!(
        new["map"],
        Av::M(HashMap::from([("inner".to_owned(), Av::N("1".into()))]))
    );
    assert_eq!(c.keys.inner()["sk"], Av::S("CHAT#01".into()));
    assert_eq!(c.old_image.inner()["n"], Av::N("1".into()));
}

#[test]
fn record_json_matches_the_lambda_fixture_layout() {
    let record = lambda_record(&sample_record(), ARN, "us-east-1");
    assert_eq!(
        record["dynamodb"]["ApproximateCreationDateTime"],
        1_700_000_000
    );
    assert_eq!(record["dynamodb"]["Keys"]["pk"], json!({"S": "STREAM#s1"}));
    assert_eq!(record["dynamodb"]["NewImage"]["b"], json!({"B": "AAH/"}));
    assert_eq!(
        record["dynamodb"]["NewImage"]["none"],
        json!({"NULL": true})
    );
    assert_eq!(
        record["dynamodb"]["NewImage"]["bins"],
        json!({"BS": ["Bw=="]})
    );
    assert_eq!(
        record["dynamodb"]["NewImage"]["map"],
        json!({"M": {"inner": {"N": "1"}}})
    );
    assert_eq!(record["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert_eq!(
        record["userIdentity"],
        json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"})
    );
}

#[test]
fn insert_without_old_image_omits_it() {
    let record = Record::builder()
        .event_id("e2")
        .event_name(OperationType::Insert)
        .dynamodb(
            StreamRecord::builder()
                .set_keys(Some(HashMap::from([(
                    "pk".to_owned(),
                    AttributeValue::S("a".into()),
                )])))
                .size_bytes(10)
                .build(),
        )
        .build();
    let value = lambda_record(&record, ARN, "us-east-1");
    assert!(value["dynamodb"].get("OldImage").is_none());
    assert!(value.get("userIdentity").is_none());
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(json!({ "Records": [value] })).expect("parses");
    assert_eq!(event.records[0].event_name, "INSERT");
    assert_eq!(
        event.records[0].aws_region, "us-east-1",
        "falls back to the gateway's region"
    );
}
