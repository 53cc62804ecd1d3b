//! Reminders before scheduled streams on the real binaries: the stream functions write
//! EventBridge Scheduler one-time schedules `remind-{stream}-{minutes}` into the gateway's
//! Scheduler stand-in (the local `AWS_ENDPOINT_URL_SCHEDULER`), which fires
//! `notifications-send` at the schedule's time, as Scheduler does on AWS.
//!
//! What is asserted: the schedule's time is exactly `scheduledAt - minutes` (read back with
//! `GetSchedule`); a reminder due a few seconds after creation reaches the channel's people
//! (not the owner) with that time; a reschedule moves the schedule, dropping a reminder
//! deletes it, cancel and an early start delete them all; a schedule left behind for a
//! cancelled stream fires and sends nothing. Absence is proved by a later reminder arriving
//! while the earlier ones did not.

use std::time::{Duration, Instant};

use chrono::SubsecRound;
use rill_aws::schedules::at_expression;
use rill_core::notification::reminder_schedule_name;
use rill_core::time::{self, Timestamp};
use rill_tests::{Stack, User};
use serde_json::{Value, json};

/// The reminders' schedule group as the gateway resolves it from the template (its logical id).
const GROUP: &str = "NotificationsScheduleGroup";

/// The reminder's schedule as the gateway holds it; `None` when there is none.
async fn schedule(stack: &Stack, stream_id: &str, minutes: u32) -> Option<Value> {
    let name = reminder_schedule_name(stream_id, minutes);
    let r = stack
        .http
        .get(stack.url(&format!("/schedules/{name}?groupName={GROUP}")))
        .send()
        .await
        .expect("GetSchedule");
    match r.status().as_u16() {
        200 => Some(r.json().await.expect("json")),
        404 => None,
        other => panic!("GetSchedule {name}: {other}"),
    }
}

async fn notifications(stack: &Stack, user: &User) -> Vec<Value> {
    let r = user.get(stack, "/api/me/notifications").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().expect("items").clone()
}

/// Waits until `user` has a notification about `stream_id`.
async fn wait_for(stack: &Stack, user: &User, stream_id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(n) = notifications(stack, user)
            .await
            .into_iter()
            .find(|n| n["streamId"] == stream_id)
        {
            return n;
        }
        assert!(Instant::now() < deadline, "no reminder for {stream_id}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `scheduledAt` so that the reminder `minutes` before it falls `seconds` from now, to the
/// second (the precision of a schedule's `at(...)`).
fn start_for_reminder_in(minutes: i64, seconds: i64) -> Timestamp {
    (time::now() + chrono::Duration::minutes(minutes) + chrono::Duration::seconds(seconds))
        .trunc_subsecs(0)
}

async fn scheduled(
    stack: &Stack,
    owner: &User,
    title: &str,
    at: Timestamp,
    reminders: &[u32],
) -> String {
    let r = owner
        .post(
            stack,
            "/api/streams/create",
            json!({"channelId": "remind", "title": title, "scheduledAt": time::format(&at),
                   "settings": {"notifications": {"reminders": reminders}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

/// A stack with a channel `remind`, its owner and a follower.
async fn channel() -> (Stack, User, User) {
    let stack = Stack::start();
    let owner = User::named("remind-owner");
    let follower =
        rill_tests::channel_with_follower(&stack, &owner, "remind", "remind-follower").await;
    (stack, owner, follower)
}

#[tokio::test]
async fn a_reminder_fires_at_its_time_for_the_channels_people() {
    let (stack, owner, follower) = channel().await;
    let start = start_for_reminder_in(15, 4);
    let id = scheduled(&stack, &owner, "Soon", start, &[60, 15]).await;

    let at = start - chrono::Duration::minutes(15);
    let s = schedule(&stack, &id, 15)
        .await
        .expect("the 15-minute reminder");
    assert_eq!(s["ScheduleExpression"], at_expression(at));
    assert_eq!(s["ActionAfterCompletion"], "DELETE");
    assert_eq!(
        serde_json::from_str::<Value>(s["Target"]["Input"].as_str().expect("input")).expect("json"),
        json!({"type": "stream:scheduled-reminder", "streamId": id, "minutes": 15})
    );
    assert!(
        schedule(&stack, &id, 60).await.is_none(),
        "60 minutes before is already past"
    );

    let n = wait_for(&stack, &follower, &id, Duration::from_secs(20)).await;
    assert_eq!(n["type"], "stream:scheduled-reminder");
    assert_eq!(n["minutesBefore"], 15);
    assert_eq!(n["title"], "Soon");
    assert_eq!(
        n["createdAt"],
        time::format(&at),
        "dated at the reminder's time"
    );
    assert!(
        schedule(&stack, &id, 15).await.is_none(),
        "a fired schedule deletes itself"
    );
    assert!(
        notifications(&stack, &owner).await.is_empty(),
        "never the owner"
    );
}

#[tokio::test]
async fn reminders_move_with_the_stream_and_never_fire_after_cancel_or_start() {
    let (stack, owner, follower) = channel().await;

    // Cancelled and started early: their schedules are deleted at once.
    let cancelled = scheduled(
        &stack,
        &owner,
        "Cancelled",
        start_for_reminder_in(15, 3),
        &[15],
    )
    .await;
    assert!(schedule(&stack, &cancelled, 15).await.is_some());
    let r = owner
        .post(
            &stack,
            &format!("/api/streams/{cancelled}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        schedule(&stack, &cancelled, 15).await.is_none(),
        "cancel deletes it"
    );
    let early = scheduled(&stack, &owner, "Early", start_for_reminder_in(15, 3), &[15]).await;
    let r = owner
        .post(&stack, &format!("/api/streams/{early}/start"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        schedule(&stack, &early, 15).await.is_none(),
        "start deletes it"
    );

    // A reschedule moves it; dropping the reminder deletes it.
    let later = time::now().trunc_subsecs(0) + chrono::Duration::hours(2);
    let moved = scheduled(&stack, &owner, "Moved", later, &[60]).await;
    assert_eq!(
        schedule(&stack, &moved, 60).await.expect("made")["ScheduleExpression"],
        at_expression(later - chrono::Duration::minutes(60))
    );
    let again = later + chrono::Duration::hours(1);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{moved}"),
            Some(json!({"scheduledAt": time::format(&again)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        schedule(&stack, &moved, 60).await.expect("moved")["ScheduleExpression"],
        at_expression(again - chrono::Duration::minutes(60))
    );
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{moved}"),
            Some(json!({"settings": {"notifications": {"reminders": [5]}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(schedule(&stack, &moved, 60).await.is_none(), "dropped");
    assert_eq!(
        schedule(&stack, &moved, 5).await.expect("added")["ScheduleExpression"],
        at_expression(again - chrono::Duration::minutes(5))
    );
    // Due in 3 s, then moved an hour later: its old time passes without a reminder.
    let postponed = scheduled(
        &stack,
        &owner,
        "Postponed",
        start_for_reminder_in(15, 3),
        &[15],
    )
    .await;
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{postponed}"),
            Some(json!({"scheduledAt": time::format(&(later + chrono::Duration::hours(3)))})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A schedule left behind (a delete that failed) for the cancelled stream, due now:
    // it fires, and the function finds the stream cancelled.
    let leftover = reminder_schedule_name(&cancelled, 15);
    let body = json!({
        "GroupName": GROUP,
        "ScheduleExpression": at_expression(time::now()),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "Target": {
            "Arn": "arn:aws:lambda:us-east-1:000000000000:function:notifications-send",
            "RoleArn": "arn:aws:iam::000000000000:role/rill-local-scheduler",
            "Input": json!({"type": "stream:scheduled-reminder", "streamId": cancelled, "minutes": 15}).to_string(),
        },
    });
    let r = stack
        .http
        .post(stack.url(&format!("/schedules/{leftover}")))
        .json(&body)
        .send()
        .await
        .expect("CreateSchedule");
    assert_eq!(r.status().as_u16(), 200);

    // The control: due after every one of the above would have fired.
    let control = scheduled(
        &stack,
        &owner,
        "Control",
        start_for_reminder_in(15, 6),
        &[15],
    )
    .await;
    wait_for(&stack, &follower, &control, Duration::from_secs(20)).await;
    assert!(
        schedule(&stack, &cancelled, 15).await.is_none(),
        "the leftover fired"
    );
    let told: Vec<String> = notifications(&stack, &follower)
        .await
        .iter()
        .map(|n| n["streamId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(told, [control], "only the control's reminder was sent");
}

#[tokio::test]
async fn the_local_scheduler_refuses_what_it_cannot_fire() {
    let stack = Stack::start();
    let base = json!({
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": "arn:aws:lambda:us-east-1:000000000000:function:notifications-send",
                   "RoleArn": "arn:aws:iam::000000000000:role/r", "Input": "{}"},
    });
    for (expression, name) in [
        ("rate(5 minutes)", "every-five"),
        ("at(2030-01-01 00:00:00)", "bad-at"),
        ("at(2030-01-01T00:00:00)", "bad/name"),
    ] {
        let mut body = base.clone();
        body["ScheduleExpression"] = json!(expression);
        let r = stack
            .http
            .post(stack.url(&format!("/schedules/{}", name.replace('/', "%2F"))))
            .json(&body)
            .send()
            .await
            .expect("CreateSchedule");
        assert_eq!(r.status().as_u16(), 400, "{expression} {name}");
        assert_eq!(
            r.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("ValidationException")
        );
    }
    let mut body = base.clone();
    body["ScheduleExpression"] = json!("at(2030-01-01T00:00:00)");
    let url = stack.url("/schedules/twice");
    let first = stack
        .http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(first.status().as_u16(), 200);
    let second = stack
        .http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(second.status().as_u16(), 409, "exists");
    let missing = stack
        .http
        .put(stack.url("/schedules/never-made"))
        .json(&body)
        .send()
        .await
        .expect("update");
    assert_eq!(missing.status().as_u16(), 404);
    let gone = stack
        .http
        .delete(stack.url("/schedules/twice?groupName=default"))
        .send()
        .await
        .expect("delete");
    assert_eq!(gone.status().as_u16(), 200);
    let again = stack
        .http
        .delete(stack.url("/schedules/twice?groupName=default"))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status().as_u16(), 404);
}
