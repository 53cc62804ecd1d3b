//! `rill_aws::prewarm` against moto (one server per test binary, `$RILL_VENV/bin/moto_server`,
//! else the repo's `.venv`). What the code under test made is read back with boto3
//! (`tests/prewarm_setup.py`), independently of it.
//!
//! Unlike `tests/ecs.rs`, moto runs without its IAM check (`INITIAL_NO_AUTH_ACTION_COUNT`):
//! moto 5.2 recomputes the signature of a REST request with a query string differently from
//! every client (boto3's own `GetSchedule ?groupName=` fails it with
//! `SignatureDoesNotMatch`), so `DeleteSchedule` could not be checked at all. The IAM side
//! is checked on the template instead (`tests/deploy/test_template_deploy.py`).
//!
//! A missing moto is a failure, not a skip: CI has it (`scripts/setup.sh`).

mod common;
use common::{Keys, MotoProcess, run_setup, signed_client, start_moto};
use std::sync::OnceLock;

use rill_aws::ecs::SignedClient;
use rill_aws::prewarm::{EventBridgeSchedules, ScalableTargetFloor, ScheduleTarget};
use rill_core::prewarm::{IngestFloor, PrewarmSchedule, schedule_name};
use serde_json::Value;

#[derive(Debug)]
struct Moto {
    url: String,
    keys: Keys,
    _process: MotoProcess,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let process = start_moto("");
        Moto {
            keys: Keys {
                id: "test".into(),
                secret: "test".into(),
            },
            url: process.url.clone(),
            _process: process,
        }
    })
}

/// Runs `tests/prewarm_setup.py` with boto3 and returns the JSON line it prints.
fn setup(args: &[&str]) -> Value {
    run_setup("prewarm_setup.py", args)
}

/// `setup(command, ...)` with the keys after the command.
fn as_admin(command: &str, args: &[&str]) -> Value {
    let m = moto();
    let mut all = vec![m.url.as_str(), command, &m.keys.id, &m.keys.secret];
    all.extend_from_slice(args);
    setup(&all)
}

fn client(keys: &Keys) -> SignedClient {
    signed_client(&moto().url, keys)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rill_core::ids::new_id().to_lowercase())
}

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rill-ingest-prewarm";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/rill-prewarm-scheduler";

/// A schedule group of its own and the API functions' client on it.
fn schedules() -> (EventBridgeSchedules, String) {
    let group = unique("rill-prewarm");
    as_admin("group", &[&group]);
    let target = ScheduleTarget {
        function_arn: FUNCTION_ARN.into(),
        role_arn: ROLE_ARN.into(),
        group: group.clone(),
    };
    (
        EventBridgeSchedules::new(client(&moto().keys), target),
        group,
    )
}

fn at(rfc3339: &str) -> rill_core::time::Timestamp {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn a_schedule_is_created_as_a_one_time_invocation_of_the_prewarm_function() {
    let (schedules, group) = schedules();
    let stream = rill_core::ids::new_id();
    schedules
        .upsert(&stream, at("2030-05-06T07:50:00.000Z"))
        .await
        .expect("created");

    let got = as_admin("schedule", &[&group, &schedule_name(&stream)]);
    assert_eq!(got["Name"], schedule_name(&stream).as_str());
    assert_eq!(got["GroupName"], group.as_str());
    assert_eq!(got["ScheduleExpression"], "at(2030-05-06T07:50:00)");
    assert_eq!(got["ScheduleExpressionTimezone"], "UTC");
    assert_eq!(got["FlexibleTimeWindow"]["Mode"], "OFF");
    assert_eq!(got["ActionAfterCompletion"], "DELETE");
    assert_eq!(got["State"], "ENABLED");
    assert_eq!(got["Target"]["Arn"], FUNCTION_ARN);
    assert_eq!(got["Target"]["RoleArn"], ROLE_ARN);
    let input: Value =
        serde_json::from_str(got["Target"]["Input"].as_str().expect("Input")).expect("JSON");
    assert_eq!(input, serde_json::json!({"streamId": stream}));
    assert_eq!(
        got["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"],
        600
    );
}

#[tokio::test]
async fn upserting_an_existing_schedule_moves_it() {
    let (schedules, group) = schedules();
    let stream = rill_core::ids::new_id();
    schedules
        .upsert(&stream, at("2030-05-06T07:50:00Z"))
        .await
        .expect("created");
    schedules
        .upsert(&stream, at("2030-05-07T19:20:30Z"))
        .await
        .expect("moved");
    let got = as_admin("schedule", &[&group, &schedule_name(&stream)]);
    assert_eq!(got["ScheduleExpression"], "at(2030-05-07T19:20:30)");
    assert_eq!(got["Target"]["Arn"], FUNCTION_ARN, "the target stays whole");
}

#[tokio::test]
async fn deleting_removes_the_schedule_and_deleting_a_missing_one_is_ok() {
    let (schedules, group) = schedules();
    let stream = rill_core::ids::new_id();
    schedules
        .upsert(&stream, at("2030-05-06T07:50:00Z"))
        .await
        .expect("created");
    schedules.delete(&stream).await.expect("deleted");
    assert_eq!(
        as_admin("schedule", &[&group, &schedule_name(&stream)]),
        serde_json::json!({"missing": true})
    );
    schedules.delete(&stream).await.expect("already gone is ok");
    schedules
        .delete(&rill_core::ids::new_id())
        .await
        .expect("never made is ok");
}

#[tokio::test]
async fn a_missing_schedule_group_is_an_error_not_silence() {
    let target = ScheduleTarget {
        function_arn: FUNCTION_ARN.into(),
        role_arn: ROLE_ARN.into(),
        group: unique("no-such-group"),
    };
    let schedules = EventBridgeSchedules::new(client(&moto().keys), target);
    // AWS answers ResourceNotFoundException; moto 5.2 fails with a bare HTTP 500 (a
    // KeyError on the group): either way the caller sees an error, not a silent success.
    let err = schedules
        .upsert(&rill_core::ids::new_id(), at("2030-05-06T07:50:00Z"))
        .await
        .expect_err("no group");
    assert!(err.0.contains("CreateSchedule"), "{err}");
}

#[tokio::test]
async fn the_floor_sets_the_scalable_targets_minimum_and_keeps_its_maximum() {
    let cluster = unique("rill-ingest");
    let resource_id = as_admin("fleet", &[&cluster])["resourceId"]
        .as_str()
        .expect("resource id")
        .to_owned();
    let floor = ScalableTargetFloor::new(client(&moto().keys), resource_id.clone());
    floor.set_min(3).await.expect("raised");
    let target = as_admin("target", &[&resource_id]);
    assert_eq!(target["MinCapacity"], 3);
    assert_eq!(target["MaxCapacity"], 10);
    floor.set_min(1).await.expect("lowered");
    assert_eq!(as_admin("target", &[&resource_id])["MinCapacity"], 1);
}

#[tokio::test]
async fn the_floor_of_a_service_that_does_not_exist_is_an_error() {
    let floor = ScalableTargetFloor::new(
        client(&moto().keys),
        format!("service/{0}/{0}", unique("nothing")),
    );
    let err = floor.set_min(2).await.expect_err("no service");
    assert!(err.0.contains("RegisterScalableTarget"), "{err}");
}
