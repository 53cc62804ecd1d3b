//! Pre-warming on AWS: `rill-core`'s [`PrewarmSchedule`] as EventBridge Scheduler one-time
//! schedules ([`EventBridgeSchedules`]) and [`IngestFloor`] as the ingest service's
//! Application Auto Scaling scalable target ([`ScalableTargetFloor`]), both over
//! [`SignedClient`] (SigV4-signed plain HTTP, no SDK crate per service).
//!
//! A schedule is `prewarm-{streamId}` in the stack's schedule group, `at(...)` in UTC with
//! no flexible window, deletes itself after it ran (`ActionAfterCompletion: DELETE`), and
//! invokes the `ingest-prewarm` function as the scheduler role with `{"streamId": ...}`.
//! The floor is `RegisterScalableTarget` with only `MinCapacity` (an update of the existing
//! target: every other setting stays as the stack made it).
//!
//! Environment (read once, validated, by [`ScheduleTarget::from_lookup`] and
//! [`FloorSettings::from_lookup`]):
//! - API functions: `PREWARM_FUNCTION_ARN`, `PREWARM_ROLE_ARN`, `PREWARM_SCHEDULE_GROUP`:
//!   all three switch one-time schedules on; none leaves them off (local runs, a stack
//!   without the ingest tier); some but not all is a configuration error.
//! - `ingest-prewarm`: `INGEST_CLUSTER`, `INGEST_SERVICE` (the scalable target
//!   `service/{cluster}/{service}`), `INGEST_MIN_TASKS`, `INGEST_MAX_TASKS`, and
//!   `INGEST_STREAMS_PER_TASK` or else `INGEST_TASK_CPU` (CPU units, 1024 per vCPU, turned
//!   into streams with [`capacity_for`]).
//!
//! Invariants: upsert and delete are idempotent (an existing schedule is replaced, a
//! missing one deleted is `Ok`); errors carry AWS's code and message, never credentials.

use async_trait::async_trait;
use aws_config::SdkConfig;
use rill_core::fleet::capacity_for;
use rill_core::prewarm::{
    FloorRule, IngestFloor, PREWARM_LEAD, PrewarmError, PrewarmSchedule, schedule_name,
};
use rill_core::time::Timestamp;
use serde_json::{Value, json};

use crate::ecs::signed::percent_encode;
use crate::ecs::{EcsError, Service, SignedClient};

/// Where one-time schedules go and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    /// `PREWARM_FUNCTION_ARN`: the `ingest-prewarm` function.
    pub function_arn: String,
    /// `PREWARM_ROLE_ARN`: the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
    /// `PREWARM_SCHEDULE_GROUP`: the stack's schedule group.
    pub group: String,
}

impl ScheduleTarget {
    /// `Ok(None)` when none of the three variables is set (pre-warming off); an error
    /// naming the missing ones when only some are. An empty value counts as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ScheduleTarget>, String> {
        const NAMES: [&str; 3] = [
            "PREWARM_FUNCTION_ARN",
            "PREWARM_ROLE_ARN",
            "PREWARM_SCHEDULE_GROUP",
        ];
        let values: Vec<Option<String>> = NAMES
            .iter()
            .map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
            .collect();
        match values.as_slice() {
            [None, None, None] => Ok(None),
            [Some(f), Some(r), Some(g)] => {
                if !valid_group(g) {
                    return Err(format!(
                        "PREWARM_SCHEDULE_GROUP {g:?} is not a valid group name"
                    ));
                }
                Ok(Some(ScheduleTarget {
                    function_arn: f.clone(),
                    role_arn: r.clone(),
                    group: g.clone(),
                }))
            }
            _ => {
                let missing: Vec<&str> = NAMES
                    .iter()
                    .zip(&values)
                    .filter(|(_, v)| v.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                Err(format!(
                    "pre-warm schedules need all of {NAMES:?}; missing {missing:?}"
                ))
            }
        }
    }
}

/// Schedule group and schedule names: `[0-9a-zA-Z-_.]+`, 1 to 64 characters.
fn valid_group(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `at(yyyy-mm-ddThh:mm:ss)` in UTC (EventBridge Scheduler's one-time expression; seconds
/// precision).
pub fn at_expression(at: Timestamp) -> String {
    at.format("at(%Y-%m-%dT%H:%M:%S)").to_string()
}

/// One-time pre-warm schedules in EventBridge Scheduler.
#[derive(Debug, Clone)]
pub struct EventBridgeSchedules {
    aws: SignedClient,
    target: ScheduleTarget,
}

impl EventBridgeSchedules {
    pub fn new(aws: SignedClient, target: ScheduleTarget) -> EventBridgeSchedules {
        EventBridgeSchedules { aws, target }
    }

    /// From the environment ([`ScheduleTarget::from_lookup`]) with the credentials, region
    /// and endpoint override of `sdk`: `Ok(None)` when pre-warming is off.
    pub fn from_lookup(
        sdk: &SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<EventBridgeSchedules>, String> {
        let Some(target) = ScheduleTarget::from_lookup(lookup)? else {
            return Ok(None);
        };
        let aws = SignedClient::new(sdk).map_err(|e| e.to_string())?;
        Ok(Some(EventBridgeSchedules::new(aws, target)))
    }

    pub fn target(&self) -> &ScheduleTarget {
        &self.target
    }

    /// The body of `CreateSchedule` and `UpdateSchedule` (an update replaces every field, so
    /// both carry all of them).
    pub fn schedule_request(&self, stream_id: &str, at: Timestamp) -> Value {
        let lead = PREWARM_LEAD.as_secs();
        json!({
            "GroupName": self.target.group,
            "Description": format!("Rill: pre-warm ingest {} min before stream {stream_id}", lead / 60),
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Target": {
                "Arn": self.target.function_arn,
                "RoleArn": self.target.role_arn,
                "Input": json!({"streamId": stream_id}).to_string(),
                // A pre-warm later than the stream's start is still worth running once
                // (the reconciler counts overdue streams), but not for a day.
                "RetryPolicy": {"MaximumEventAgeInSeconds": lead, "MaximumRetryAttempts": 5},
            },
        })
    }

    fn path(stream_id: &str) -> String {
        format!("/schedules/{}", percent_encode(&schedule_name(stream_id)))
    }
}

fn failed(e: EcsError) -> PrewarmError {
    PrewarmError(e.to_string())
}

fn is_api(e: &EcsError, status: u16, code: &str) -> bool {
    matches!(e, EcsError::Api { status: s, code: c, .. } if *s == status || c == code)
}

#[async_trait]
impl PrewarmSchedule for EventBridgeSchedules {
    /// `CreateSchedule`; when it exists already (`ConflictException`), `UpdateSchedule`.
    async fn upsert(&self, stream_id: &str, at: Timestamp) -> Result<(), PrewarmError> {
        let body = self.schedule_request(stream_id, at);
        let path = Self::path(stream_id);
        let created = self
            .aws
            .call_rest_json(
                Service::Scheduler,
                "CreateSchedule",
                "POST",
                &path,
                Some(&body),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if is_api(&e, 409, "ConflictException") => self
                .aws
                .call_rest_json(
                    Service::Scheduler,
                    "UpdateSchedule",
                    "PUT",
                    &path,
                    Some(&body),
                )
                .await
                .map(drop)
                .map_err(failed),
            Err(e) => Err(failed(e)),
        }
    }

    async fn delete(&self, stream_id: &str) -> Result<(), PrewarmError> {
        let path = format!(
            "{}?groupName={}",
            Self::path(stream_id),
            percent_encode(&self.target.group)
        );
        match self
            .aws
            .call_rest_json(Service::Scheduler, "DeleteSchedule", "DELETE", &path, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_api(&e, 404, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}

/// The ingest service's `ecs:service:DesiredCount` scalable target.
#[derive(Debug, Clone)]
pub struct ScalableTargetFloor {
    aws: SignedClient,
    resource_id: String,
}

impl ScalableTargetFloor {
    /// `resource_id`: `service/{cluster}/{service}`.
    pub fn new(aws: SignedClient, resource_id: String) -> ScalableTargetFloor {
        ScalableTargetFloor { aws, resource_id }
    }
}

#[async_trait]
impl IngestFloor for ScalableTargetFloor {
    async fn set_min(&self, min: u32) -> Result<(), PrewarmError> {
        self.aws
            .call_json(
                Service::ApplicationAutoScaling,
                "AnyScaleFrontendService.RegisterScalableTarget",
                &json!({
                    "ServiceNamespace": "ecs",
                    "ResourceId": self.resource_id,
                    "ScalableDimension": "ecs:service:DesiredCount",
                    "MinCapacity": min,
                }),
            )
            .await
            .map(drop)
            .map_err(failed)
    }
}

/// What `ingest-prewarm` needs to know about the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorSettings {
    /// `service/{INGEST_CLUSTER}/{INGEST_SERVICE}`.
    pub resource_id: String,
    pub rule: FloorRule,
}

impl FloorSettings {
    /// Every variable is required (the function is useless without them); errors name the
    /// variable and what is wrong with it. An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<FloorSettings, String> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        let number = |name: &str, value: String| {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{name} must be a whole number >= 1, got {value:?}"))
        };
        let cluster = required("INGEST_CLUSTER")?;
        let service = required("INGEST_SERVICE")?;
        let base_min = number("INGEST_MIN_TASKS", required("INGEST_MIN_TASKS")?)?;
        let max = number("INGEST_MAX_TASKS", required("INGEST_MAX_TASKS")?)?;
        if max < base_min {
            return Err(format!(
                "INGEST_MAX_TASKS ({max}) is below INGEST_MIN_TASKS ({base_min})"
            ));
        }
        let streams_per_task = match var("INGEST_STREAMS_PER_TASK") {
            Some(v) => number("INGEST_STREAMS_PER_TASK", v)?,
            None => {
                let units = number(
                    "INGEST_TASK_CPU",
                    var("INGEST_TASK_CPU").ok_or(
                        "set INGEST_STREAMS_PER_TASK or INGEST_TASK_CPU (CPU units of one task)",
                    )?,
                )?;
                capacity_for((units / 1024).max(1) as usize)
            }
        };
        Ok(FloorSettings {
            resource_id: format!("service/{cluster}/{service}"),
            rule: FloorRule {
                base_min,
                max,
                streams_per_task,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(env: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn schedules_are_off_without_any_variable_and_an_error_with_only_some() {
        assert_eq!(ScheduleTarget::from_lookup(lookup(&[])), Ok(None));
        assert_eq!(
            ScheduleTarget::from_lookup(lookup(&[("PREWARM_FUNCTION_ARN", "")])),
            Ok(None)
        );
        let partial = ScheduleTarget::from_lookup(lookup(&[("PREWARM_FUNCTION_ARN", "arn:f")]))
            .expect_err("partial");
        assert!(partial.contains("PREWARM_ROLE_ARN"), "{partial}");
        let on = ScheduleTarget::from_lookup(lookup(&[
            ("PREWARM_FUNCTION_ARN", "arn:f"),
            ("PREWARM_ROLE_ARN", "arn:r"),
            ("PREWARM_SCHEDULE_GROUP", "rill-prewarm"),
        ]))
        .expect("valid")
        .expect("on");
        assert_eq!(on.group, "rill-prewarm");
        assert!(
            ScheduleTarget::from_lookup(lookup(&[
                ("PREWARM_FUNCTION_ARN", "arn:f"),
                ("PREWARM_ROLE_ARN", "arn:r"),
                ("PREWARM_SCHEDULE_GROUP", "bad/name"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn at_expressions_are_utc_to_the_second() {
        let t = chrono::DateTime::parse_from_rfc3339("2027-03-04T05:06:07.890Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(at_expression(t), "at(2027-03-04T05:06:07)");
    }

    #[test]
    fn floor_settings_turn_task_cpu_into_streams_per_task() {
        let base = [
            ("INGEST_CLUSTER", "rill-ingest"),
            ("INGEST_SERVICE", "rill-ingest"),
            ("INGEST_MIN_TASKS", "1"),
            ("INGEST_MAX_TASKS", "10"),
        ];
        let mut env = base.to_vec();
        env.push(("INGEST_TASK_CPU", "4096"));
        let s = FloorSettings::from_lookup(lookup(&env)).expect("valid");
        assert_eq!(s.resource_id, "service/rill-ingest/rill-ingest");
        assert_eq!(s.rule.streams_per_task, capacity_for(4));
        assert_eq!((s.rule.base_min, s.rule.max), (1, 10));
        env.push(("INGEST_STREAMS_PER_TASK", "3"));
        let s = FloorSettings::from_lookup(lookup(&env)).expect("valid");
        assert_eq!(s.rule.streams_per_task, 3, "an explicit capacity wins");
    }

    #[test]
    fn floor_settings_refuse_missing_or_nonsense_values() {
        let err = FloorSettings::from_lookup(lookup(&[])).expect_err("missing");
        assert!(err.contains("INGEST_CLUSTER"), "{err}");
        let env = [
            ("INGEST_CLUSTER", "c"),
            ("INGEST_SERVICE", "s"),
            ("INGEST_MIN_TASKS", "3"),
            ("INGEST_MAX_TASKS", "2"),
            ("INGEST_TASK_CPU", "1024"),
        ];
        assert!(
            FloorSettings::from_lookup(lookup(&env)).is_err(),
            "max < min"
        );
        let env = [
            ("INGEST_CLUSTER", "c"),
            ("INGEST_SERVICE", "s"),
            ("INGEST_MIN_TASKS", "zero"),
            ("INGEST_MAX_TASKS", "2"),
            ("INGEST_TASK_CPU", "1024"),
        ];
        let err = FloorSettings::from_lookup(lookup(&env)).expect_err("not a number");
        assert!(err.contains("INGEST_MIN_TASKS"), "{err}");
        let env = [
            ("INGEST_CLUSTER", "c"),
            ("INGEST_SERVICE", "s"),
            ("INGEST_MIN_TASKS", "1"),
            ("INGEST_MAX_TASKS", "2"),
        ];
        let err = FloorSettings::from_lookup(lookup(&env)).expect_err("no capacity");
        assert!(err.contains("INGEST_TASK_CPU"), "{err}");
    }
}
