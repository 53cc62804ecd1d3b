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
//! Schedules are written through [`crate::schedules`].
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
use serde_json::json;

use crate::ecs::{EcsError, Service, SignedClient};
use crate::schedules::{OneTime, OneTimeSchedules};
pub use crate::schedules::{ScheduleTarget, at_expression};

/// One-time pre-warm schedules in EventBridge Scheduler (`PREWARM_*`).
#[derive(Debug, Clone)]
pub struct EventBridgeSchedules {
    schedules: OneTimeSchedules,
}

impl EventBridgeSchedules {
    pub fn new(aws: SignedClient, target: ScheduleTarget) -> EventBridgeSchedules {
        EventBridgeSchedules {
            schedules: OneTimeSchedules::new(aws, target),
        }
    }

    /// From the `PREWARM_*` environment with the credentials, region and endpoint override
    /// of `sdk`: `Ok(None)` when pre-warming is off.
    pub fn from_lookup(
        sdk: &SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<EventBridgeSchedules>, String> {
        Ok(OneTimeSchedules::from_lookup(sdk, "PREWARM", lookup)?
            .map(|schedules| EventBridgeSchedules { schedules }))
    }

    pub fn target(&self) -> &ScheduleTarget {
        self.schedules.target()
    }

    /// The body of `CreateSchedule` and `UpdateSchedule` for the stream's pre-warm.
    pub fn schedule_request(&self, stream_id: &str, at: Timestamp) -> serde_json::Value {
        self.schedules
            .request(&Self::one_time(&schedule_name(stream_id), stream_id, at))
    }

    fn one_time<'a>(name: &'a str, stream_id: &str, at: Timestamp) -> OneTime<'a> {
        let lead = PREWARM_LEAD.as_secs();
        OneTime {
            name,
            at,
            description: format!(
                "Rill: pre-warm ingest {} min before stream {stream_id}",
                lead / 60
            ),
            input: json!({"streamId": stream_id}),
            // A pre-warm later than the stream's start is still worth running once (the
            // reconciler counts overdue streams), but not for a day.
            max_event_age_secs: lead,
            max_retries: 5,
        }
    }
}

fn failed(e: EcsError) -> PrewarmError {
    PrewarmError(e.to_string())
}

#[async_trait]
impl PrewarmSchedule for EventBridgeSchedules {
    async fn upsert(&self, stream_id: &str, at: Timestamp) -> Result<(), PrewarmError> {
        let name = schedule_name(stream_id);
        self.schedules
            .put(&Self::one_time(&name, stream_id, at))
            .await
            .map_err(failed)
    }

    async fn delete(&self, stream_id: &str) -> Result<(), PrewarmError> {
        self.schedules
            .delete(&schedule_name(stream_id))
            .await
            .map_err(failed)
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
    use crate::schedules::tests::lookup;

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
