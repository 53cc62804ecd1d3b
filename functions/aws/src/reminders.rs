//! Reminders on AWS: `rill-core`'s [`ReminderSchedule`] as EventBridge Scheduler one-time
//! schedules `remind-{streamId}-{minutes}` ([`crate::schedules`]) invoking the
//! `notifications-send` function with
//! `{"type": "stream:scheduled-reminder", "streamId", "minutes"}`.
//!
//! Environment: `REMINDER_FUNCTION_ARN`, `REMINDER_ROLE_ARN`, `REMINDER_SCHEDULE_GROUP`
//! (all three: on; none: off; some: a configuration error). Locally the gateway is the
//! Scheduler (`AWS_ENDPOINT_URL_SCHEDULER`) and fires them itself.
//!
//! A late delivery is dropped after [`REMINDER_LATE_MAX_SECS`] (the function would refuse
//! it anyway): a reminder an hour late is noise.

use async_trait::async_trait;
use aws_config::SdkConfig;
use rill_core::notification::{
    REMINDER_LATE_MAX_SECS, ReminderSchedule, ScheduleError, reminder_schedule_name,
};
use rill_core::time::Timestamp;
use serde_json::json;

use crate::schedules::{OneTime, OneTimeSchedules, ScheduleTarget};

/// Reminder schedules in EventBridge Scheduler.
#[derive(Debug, Clone)]
pub struct EventBridgeReminders {
    schedules: OneTimeSchedules,
}

impl EventBridgeReminders {
    /// From the `REMINDER_*` environment: `Ok(None)` when reminders are off.
    pub fn from_lookup(
        sdk: &SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<EventBridgeReminders>, String> {
        Ok(OneTimeSchedules::from_lookup(sdk, "REMINDER", lookup)?
            .map(|schedules| EventBridgeReminders { schedules }))
    }

    pub fn target(&self) -> &ScheduleTarget {
        self.schedules.target()
    }
}

fn failed(e: crate::ecs::EcsError) -> ScheduleError {
    ScheduleError(e.to_string())
}

#[async_trait]
impl ReminderSchedule for EventBridgeReminders {
    async fn upsert(
        &self,
        stream_id: &str,
        minutes: u32,
        at: Timestamp,
    ) -> Result<(), ScheduleError> {
        let name = reminder_schedule_name(stream_id, minutes);
        self.schedules
            .put(&OneTime {
                name: &name,
                at,
                description: format!("Rill: reminder {minutes} min before stream {stream_id}"),
                input: json!({"type": "stream:scheduled-reminder", "streamId": stream_id, "minutes": minutes}),
                max_event_age_secs: REMINDER_LATE_MAX_SECS as u64,
                max_retries: 3,
            })
            .await
            .map_err(failed)
    }

    async fn delete(&self, stream_id: &str, minutes: u32) -> Result<(), ScheduleError> {
        self.schedules
            .delete(&reminder_schedule_name(stream_id, minutes))
            .await
            .map_err(failed)
    }
}
