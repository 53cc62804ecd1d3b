//! Pre-warm for scheduled streams, end to end on the local stack: the real stream functions
//! behind rill-gateway write and delete EventBridge Scheduler one-time schedules in moto
//! (the gateway passes `PREWARM_*` to every function, and moto is their `AWS_ENDPOINT_URL`),
//! and the `ingest-prewarm` reconciler sets the minimum of a scalable target in moto from
//! the streams the gateway stored. Schedules and the scalable target are read back through
//! moto's own APIs.
//!
//! The reconciler runs in process (`rill_api::prewarm::Prewarm::handle`, what the function
//! binary calls per event) with the stores and adapters it builds on AWS: the gateway
//! serves HTTP and stream events, not scheduler invocations.
//!
//! Needs the workspace binaries (`cargo build --workspace`) and moto (`scripts/setup.sh`).

use std::sync::Arc;

use chrono::{Duration, SubsecRound};
use rill_api::prewarm::{Outcome, Prewarm, PrewarmEvent};
use rill_aws::ecs::{Service, SignedClient};
use rill_aws::prewarm::{ScalableTargetFloor, at_expression};
use rill_core::prewarm::{FloorRule, schedule_name};
use rill_core::time::{self, Timestamp};
use rill_tests::{Stack, User};
use serde_json::{Value, json};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rill-ingest-prewarm";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/rill-prewarm-scheduler";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rill_core::ids::new_id().to_lowercase())
}

/// A signed client on the shared moto, as the functions build theirs.
async fn aws_at(moto: &str) -> SignedClient {
    SignedClient::new(&rill_tests::moto_sdk(moto).await).expect("client")
}

async fn aws(stack: &Stack) -> SignedClient {
    aws_at(&stack.moto).await
}

/// A stack whose stream functions write schedules into a fresh group.
async fn stack_with_prewarm() -> (Stack, String) {
    let group = unique("rill-prewarm");
    // The group exists before the functions use it, as the stack creates it.
    aws_at(&rill_tests::moto_url())
        .await
        .call_rest_json(
            Service::Scheduler,
            "CreateScheduleGroup",
            "POST",
            &format!("/schedule-groups/{group}"),
            Some(&json!({})),
        )
        .await
        .expect("schedule group");
    // moto's Scheduler, not the gateway's stand-in: schedules are read back from moto.
    let moto = rill_tests::moto_url();
    let stack = Stack::start_with(&[
        ("AWS_ENDPOINT_URL_SCHEDULER", moto.as_str()),
        ("PREWARM_FUNCTION_ARN", FUNCTION_ARN),
        ("PREWARM_ROLE_ARN", ROLE_ARN),
        ("PREWARM_SCHEDULE_GROUP", group.as_str()),
    ]);
    (stack, group)
}

/// The stream's schedule as moto has it, `None` when there is none.
async fn schedule(stack: &Stack, group: &str, stream_id: &str) -> Option<Value> {
    let path = format!("/schedules/{}?groupName={group}", schedule_name(stream_id));
    match aws(stack)
        .await
        .call_rest_json(Service::Scheduler, "GetSchedule", "GET", &path, None)
        .await
    {
        Ok(doc) => Some(doc),
        Err(rill_aws::ecs::EcsError::Api { status: 404, .. }) => None,
        Err(e) => panic!("GetSchedule: {e}"),
    }
}

/// A time `minutes` from now, to the millisecond (what the API stores).
fn in_minutes(minutes: i64) -> Timestamp {
    (time::now() + Duration::minutes(minutes)).trunc_subsecs(3)
}

fn scheduled_body(at: Timestamp) -> Value {
    json!({"channelId": "prewarm", "title": "Scheduled show", "scheduledAt": time::format(&at)})
}

#[tokio::test]
async fn scheduling_rescheduling_and_cancelling_keep_the_prewarm_schedule_in_step() {
    let (stack, group) = stack_with_prewarm().await;
    let owner = User::named("prewarm-owner");

    let start = in_minutes(120);
    let (id, _) = owner.create_stream(&stack, scheduled_body(start)).await;
    let s = schedule(&stack, &group, &id)
        .await
        .expect("created with the stream");
    assert_eq!(
        s["ScheduleExpression"],
        at_expression(start - Duration::minutes(10)),
        "T-10 min"
    );
    assert_eq!(s["Target"]["Arn"], FUNCTION_ARN);
    assert_eq!(s["Target"]["RoleArn"], ROLE_ARN);
    assert_eq!(s["ActionAfterCompletion"], "DELETE");
    let input: Value =
        serde_json::from_str(s["Target"]["Input"].as_str().expect("input")).expect("JSON input");
    assert_eq!(input, json!({"streamId": id}));

    // Rescheduling moves it.
    let later = in_minutes(180);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"scheduledAt": time::format(&later)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scheduledAt"], time::format(&later).as_str());
    assert_eq!(r.body["status"], "scheduled");
    let s = schedule(&stack, &group, &id).await.expect("still there");
    assert_eq!(
        s["ScheduleExpression"],
        at_expression(later - Duration::minutes(10))
    );

    // Moved closer than the lead: no schedule (the reconciler counts it from now on).
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(5))})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(schedule(&stack, &group, &id).await, None);

    // And back: a schedule again.
    let back = in_minutes(90);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"scheduledAt": time::format(&back)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        schedule(&stack, &group, &id).await.expect("again")["ScheduleExpression"],
        at_expression(back - Duration::minutes(10))
    );

    // Cancelling deletes it.
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(schedule(&stack, &group, &id).await, None);
}

#[tokio::test]
async fn starting_a_scheduled_stream_deletes_its_schedule_and_near_or_unscheduled_streams_get_none()
{
    let (stack, group) = stack_with_prewarm().await;
    let owner = User::named("prewarm-starter");

    let (id, _) = owner
        .create_stream(&stack, scheduled_body(in_minutes(60)))
        .await;
    assert!(schedule(&stack, &group, &id).await.is_some());
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/start"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "preparing");
    assert_eq!(schedule(&stack, &group, &id).await, None);

    let (soon, _) = owner
        .create_stream(&stack, scheduled_body(in_minutes(8)))
        .await;
    assert_eq!(
        schedule(&stack, &group, &soon).await,
        None,
        "inside the lead"
    );
    let (now, _) = owner
        .create_stream(&stack, json!({"channelId": "prewarm", "title": "Now"}))
        .await;
    assert_eq!(schedule(&stack, &group, &now).await, None, "not scheduled");
}

/// Ids of the channel's scheduled listing, in its order.
async fn scheduled_ids(stack: &Stack, channel: &str) -> Vec<String> {
    let path = format!("/api/streams/scheduled?channelId={channel}");
    let r = User::anonymous().get(stack, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn rescheduling_is_for_scheduled_streams_and_future_times_only_and_reorders_the_listing() {
    let stack = Stack::start();
    let owner = User::named("prewarm-rules");
    let channel = unique("ch");
    let body = |at: Timestamp| json!({"channelId": channel, "title": "Scheduled", "scheduledAt": time::format(&at)});
    let (first, _) = owner.create_stream(&stack, body(in_minutes(60))).await;
    let (second, _) = owner.create_stream(&stack, body(in_minutes(120))).await;
    assert_eq!(
        scheduled_ids(&stack, &channel).await,
        [first.clone(), second.clone()]
    );

    // The listing follows the new start time (the index sort key moved with it).
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{first}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(240))})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        scheduled_ids(&stack, &channel).await,
        [second.clone(), first.clone()]
    );

    // A past time is a validation error and changes nothing.
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{second}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(-5))})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );

    // Only a scheduled stream can be rescheduled.
    let r = owner
        .post(&stack, &format!("/api/streams/{second}/start"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{second}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(30))})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "not_scheduled"), "{}", r.text);

    // Someone else's stream: refused as every other edit is.
    let r = User::named("intruder")
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{first}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(30))})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test]
async fn a_scheduler_failure_never_loses_the_stream() {
    // A group that does not exist: every schedule call fails.
    let stack = Stack::start_with(&[
        ("PREWARM_FUNCTION_ARN", FUNCTION_ARN),
        ("PREWARM_ROLE_ARN", ROLE_ARN),
        ("PREWARM_SCHEDULE_GROUP", "no-such-group"),
    ]);
    let owner = User::named("prewarm-unlucky");
    let (id, _) = owner
        .create_stream(&stack, scheduled_body(in_minutes(120)))
        .await;
    let r = owner.get(&stack, &format!("/api/streams/{id}")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("scheduled"))
    );
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"scheduledAt": time::format(&in_minutes(150))})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("cancelled"))
    );
}

/// An ECS service in moto registered as a scalable target (min 1, max 10), as the stack
/// makes it. Returns its resource id.
async fn fleet(stack: &Stack) -> String {
    let aws = aws(stack).await;
    let name = unique("rill-ingest");
    let ecs = |target: &'static str, body: Value| {
        let aws = aws.clone();
        async move {
            aws.call_json(
                Service::Ecs,
                &format!("AmazonEC2ContainerServiceV20141113.{target}"),
                &body,
            )
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"))
        }
    };
    ecs("CreateCluster", json!({"clusterName": name})).await;
    ecs(
        "RegisterTaskDefinition",
        json!({"family": name, "containerDefinitions": [
            {"name": "ingest", "image": "rill-ingest:latest", "cpu": 4096, "memory": 8192}]}),
    )
    .await;
    ecs(
        "CreateService",
        json!({"cluster": name, "serviceName": name, "taskDefinition": name, "desiredCount": 0}),
    )
    .await;
    let resource_id = format!("service/{name}/{name}");
    aws.call_json(
        Service::ApplicationAutoScaling,
        "AnyScaleFrontendService.RegisterScalableTarget",
        &json!({"ServiceNamespace": "ecs", "ResourceId": resource_id,
                "ScalableDimension": "ecs:service:DesiredCount",
                "MinCapacity": 1, "MaxCapacity": 10}),
    )
    .await
    .expect("scalable target");
    resource_id
}

async fn min_capacity(stack: &Stack, resource_id: &str) -> Value {
    let found = aws(stack)
        .await
        .call_json(
            Service::ApplicationAutoScaling,
            "AnyScaleFrontendService.DescribeScalableTargets",
            &json!({"ServiceNamespace": "ecs", "ResourceIds": [resource_id]}),
        )
        .await
        .expect("describe");
    found["ScalableTargets"][0]["MinCapacity"].clone()
}

#[tokio::test]
async fn the_reconciler_raises_the_minimum_for_streams_starting_soon_and_lowers_it_after() {
    let stack = Stack::start();
    let resource_id = fleet(&stack).await;
    let owner = User::named("prewarm-fleet");
    let body = |minutes: i64, title: &str| {
        json!({"channelId": "fleet", "title": title,
               "scheduledAt": time::format(&in_minutes(minutes))})
    };
    let (a, _) = owner.create_stream(&stack, body(5, "soon")).await;
    let (b, _) = owner.create_stream(&stack, body(12, "a bit later")).await;
    owner.create_stream(&stack, body(60, "in an hour")).await;
    owner.create_stream(&stack, body(300, "tonight")).await;

    let prewarm = Prewarm {
        streams: Arc::new(stack.store().await),
        fleet: Arc::new(ScalableTargetFloor::new(
            aws(&stack).await,
            resource_id.clone(),
        )),
        rule: FloorRule {
            base_min: 1,
            max: 10,
            streams_per_task: 1,
        },
    };
    let event: PrewarmEvent = serde_json::from_value(json!({"streamId": a})).expect("event");
    let outcome = prewarm.handle(event).await.expect("reconciled");
    assert_eq!(
        outcome,
        Outcome {
            upcoming: 2,
            min_tasks: 2
        }
    );
    assert_eq!(min_capacity(&stack, &resource_id).await, 2);

    // Both went live: the periodic run sets the minimum back to the base.
    for id in [&a, &b] {
        let r = owner
            .post(&stack, &format!("/api/streams/{id}/start"), json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let outcome = prewarm
        .handle(PrewarmEvent::default())
        .await
        .expect("reconciled");
    assert_eq!(
        outcome,
        Outcome {
            upcoming: 0,
            min_tasks: 1
        }
    );
    assert_eq!(min_capacity(&stack, &resource_id).await, 1);
}
