//! EventBridge Scheduler one-time schedules over [`SignedClient`] (SigV4-signed REST-JSON,
//! no SDK crate): what pre-warm ([`crate::prewarm`]) and reminders ([`crate::reminders`])
//! both write.
//!
//! A schedule is `at(...)` in UTC with no flexible window, deletes itself after it ran
//! (`ActionAfterCompletion: DELETE`), and invokes one function as one role with a JSON
//! input. Each user of this module has its own three variables
//! (`{PREFIX}_FUNCTION_ARN`, `{PREFIX}_ROLE_ARN`, `{PREFIX}_SCHEDULE_GROUP`): all three
//! switch its schedules on, none leaves them off, some but not all is a configuration
//! error ([`ScheduleTarget::from_lookup`]).
//!
//! Invariants: [`OneTimeSchedules::put`] and [`OneTimeSchedules::delete`] are idempotent
//! (an existing schedule is replaced, a missing one deleted is `Ok`); errors carry AWS's
//! code and message, never credentials.

use aws_config::SdkConfig;
use rill_core::time::Timestamp;
use serde_json::{Value, json};

use crate::ecs::signed::percent_encode;
use crate::ecs::{EcsError, Service, SignedClient};

/// Where one kind of one-time schedule goes and what it invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    /// `{PREFIX}_FUNCTION_ARN`: the function a schedule invokes.
    pub function_arn: String,
    /// `{PREFIX}_ROLE_ARN`: the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
    /// `{PREFIX}_SCHEDULE_GROUP`: the stack's schedule group for them.
    pub group: String,
}

impl ScheduleTarget {
    /// `Ok(None)` when none of the three `{prefix}_...` variables is set (off); an error
    /// naming the missing ones when only some are. An empty value counts as unset.
    pub fn from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ScheduleTarget>, String> {
        let names = [
            format!("{prefix}_FUNCTION_ARN"),
            format!("{prefix}_ROLE_ARN"),
            format!("{prefix}_SCHEDULE_GROUP"),
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
            .collect();
        match values.as_slice() {
            [None, None, None] => Ok(None),
            [Some(f), Some(r), Some(g)] => {
                if !valid_name(g) {
                    return Err(format!("{} {g:?} is not a valid group name", names[2]));
                }
                Ok(Some(ScheduleTarget {
                    function_arn: f.clone(),
                    role_arn: r.clone(),
                    group: g.clone(),
                }))
            }
            _ => {
                let missing: Vec<&str> = names
                    .iter()
                    .zip(&values)
                    .filter(|(_, v)| v.is_none())
                    .map(|(n, _)| n.as_str())
                    .collect();
                Err(format!(
                    "one-time schedules need all of {names:?}; missing {missing:?}"
                ))
            }
        }
    }
}

/// Schedule group and schedule names: `[0-9a-zA-Z-_.]+`, 1 to 64 characters.
pub fn valid_name(name: &str) -> bool {
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

/// What one schedule does when it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct OneTime<'a> {
    pub name: &'a str,
    pub at: Timestamp,
    pub description: String,
    /// The function's event.
    pub input: Value,
    /// How late (seconds, 60..=86400) an invocation may still be delivered, and how many
    /// times a failed one is retried.
    pub max_event_age_secs: u64,
    pub max_retries: u32,
}

/// One kind of one-time schedule in one group, invoking one function.
#[derive(Debug, Clone)]
pub struct OneTimeSchedules {
    aws: SignedClient,
    target: ScheduleTarget,
}

impl OneTimeSchedules {
    pub fn new(aws: SignedClient, target: ScheduleTarget) -> OneTimeSchedules {
        OneTimeSchedules { aws, target }
    }

    /// From the `{prefix}_...` variables ([`ScheduleTarget::from_lookup`]) with the
    /// credentials, region and endpoint override of `sdk`: `Ok(None)` when they are off.
    pub fn from_lookup(
        sdk: &SdkConfig,
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OneTimeSchedules>, String> {
        let Some(target) = ScheduleTarget::from_lookup(prefix, lookup)? else {
            return Ok(None);
        };
        let aws = SignedClient::new(sdk).map_err(|e| e.to_string())?;
        Ok(Some(OneTimeSchedules::new(aws, target)))
    }

    pub fn target(&self) -> &ScheduleTarget {
        &self.target
    }

    /// The body of `CreateSchedule` and `UpdateSchedule` (an update replaces every field, so
    /// both carry all of them).
    pub fn request(&self, schedule: &OneTime<'_>) -> Value {
        json!({
            "GroupName": self.target.group,
            "Description": schedule.description,
            "ScheduleExpression": at_expression(schedule.at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Target": {
                "Arn": self.target.function_arn,
                "RoleArn": self.target.role_arn,
                "Input": schedule.input.to_string(),
                "RetryPolicy": {
                    "MaximumEventAgeInSeconds": schedule.max_event_age_secs,
                    "MaximumRetryAttempts": schedule.max_retries,
                },
            },
        })
    }

    fn path(name: &str) -> String {
        format!("/schedules/{}", percent_encode(name))
    }

    /// `CreateSchedule`; when it exists already (`ConflictException`), `UpdateSchedule`.
    pub async fn put(&self, schedule: &OneTime<'_>) -> Result<(), EcsError> {
        let body = self.request(schedule);
        let path = Self::path(schedule.name);
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
                .map(drop),
            Err(e) => Err(e),
        }
    }

    /// `DeleteSchedule`; one that does not exist is `Ok`.
    pub async fn delete(&self, name: &str) -> Result<(), EcsError> {
        let path = format!(
            "{}?groupName={}",
            Self::path(name),
            percent_encode(&self.target.group)
        );
        match self
            .aws
            .call_rest_json(Service::Scheduler, "DeleteSchedule", "DELETE", &path, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_api(&e, 404, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_api(e: &EcsError, status: u16, code: &str) -> bool {
    matches!(e, EcsError::Api { status: s, code: c, .. } if *s == status || c == code)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A variable lookup over a fixed list (the `from_lookup` constructors' tests).
    pub(crate) fn lookup<'a>(
        env: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn schedules_are_off_without_any_variable_and_an_error_with_only_some() {
        assert_eq!(
            ScheduleTarget::from_lookup("PREWARM", lookup(&[])),
            Ok(None)
        );
        assert_eq!(
            ScheduleTarget::from_lookup("PREWARM", lookup(&[("PREWARM_FUNCTION_ARN", "")])),
            Ok(None)
        );
        let partial =
            ScheduleTarget::from_lookup("REMINDER", lookup(&[("REMINDER_FUNCTION_ARN", "arn:f")]))
                .expect_err("partial");
        assert!(partial.contains("REMINDER_ROLE_ARN"), "{partial}");
        let on = ScheduleTarget::from_lookup(
            "PREWARM",
            lookup(&[
                ("PREWARM_FUNCTION_ARN", "arn:f"),
                ("PREWARM_ROLE_ARN", "arn:r"),
                ("PREWARM_SCHEDULE_GROUP", "rill-prewarm"),
            ]),
        )
        .expect("valid")
        .expect("on");
        assert_eq!(on.group, "rill-prewarm");
        assert!(
            ScheduleTarget::from_lookup(
                "PREWARM",
                lookup(&[
                    ("PREWARM_FUNCTION_ARN", "arn:f"),
                    ("PREWARM_ROLE_ARN", "arn:r"),
                    ("PREWARM_SCHEDULE_GROUP", "bad/name"),
                ])
            )
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
}
