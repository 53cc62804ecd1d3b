//! `ingest-prewarm`: the reconciler that sets the ingest fleet's minimum from the scheduled
//! streams about to start (`rill_core::prewarm` has the rules).
//!
//! Invoked by EventBridge Scheduler: by a stream's one-time schedule 10 min before its start
//! (payload `{"streamId": "..."}`) and by the stack's `rate(5 minutes)` schedule (payload
//! `{}`). Both do the same thing, so a lost, late or duplicated invocation only changes
//! when the minimum is recomputed: list the scheduled streams soonest first, count those
//! that are upcoming, stop at the first one past the horizon, and set the minimum to the
//! floor for that count. The same run lowers the minimum again once the streams have
//! started (target tracking carries live streams).
//!
//! Cost per run: one `Query` per page of 100 scheduled streams (a page normally, at most
//! [`MAX_PAGES`]: abandoned scheduled streams sort first and are skipped), then one
//! `RegisterScalableTarget`.
//!
//! Configuration is read and validated once at start ([`FloorSettings`]); a missing or
//! nonsensical value stops the function at init, where it is loud.

use std::sync::Arc;

use rill_aws::AwsSettings;
use rill_aws::ecs::SignedClient;
use rill_aws::prewarm::{FloorSettings, ScalableTargetFloor};
use rill_aws::store::DynamoStore;
use rill_core::channel::ListScope;
use rill_core::prewarm::{FloorRule, IngestFloor, floor, is_past_horizon, is_upcoming};
use rill_core::store::{ListQuery, Listing, StreamStore};
use rill_core::time::{self, Timestamp};
use serde::{Deserialize, Serialize};

/// Scheduled streams read per page.
pub const PAGE_SIZE: u32 = 100;
/// Pages read per run at most (abandoned scheduled streams sort before the upcoming ones);
/// past it the count so far is used and a warning logged.
pub const MAX_PAGES: u32 = 20;

/// What invoked the reconciler: `streamId` from a stream's one-time schedule, nothing from
/// the periodic one. Anything else in the payload is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrewarmEvent {
    #[serde(default)]
    pub stream_id: Option<String>,
}

/// What one run decided (the function's response, and its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Scheduled streams starting within the horizon (or recently overdue).
    pub upcoming: u32,
    /// The minimum task count set.
    pub min_tasks: u32,
}

/// Why a run failed (the invocation fails, so the scheduler's retry policy applies).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("listing scheduled streams: {0}")]
    Store(#[from] rill_core::store::StoreError),
    #[error("setting the minimum: {0}")]
    Floor(#[from] rill_core::prewarm::PrewarmError),
}

/// Counts the upcoming scheduled streams at `now` and sets the fleet's minimum.
pub async fn reconcile(
    streams: &dyn StreamStore,
    fleet: &dyn IngestFloor,
    rule: &FloorRule,
    now: Timestamp,
) -> Result<Outcome, ReconcileError> {
    let mut upcoming = 0u32;
    let mut cursor = None;
    for page_number in 1..=MAX_PAGES {
        let page = streams
            .list_streams(&ListQuery {
                listing: Listing::Scheduled,
                channel_id: None,
                limit: PAGE_SIZE,
                cursor,
                // Members-only and unlisted streams need warm nodes too.
                scope: ListScope::all(),
            })
            .await?;
        let mut past_horizon = false;
        for at in page.items.iter().filter_map(|s| s.scheduled_at) {
            if is_past_horizon(at, now) {
                past_horizon = true;
                break;
            }
            if is_upcoming(at, now) {
                upcoming += 1;
            }
        }
        cursor = page.next_cursor;
        if past_horizon || cursor.is_none() {
            break;
        }
        if page_number == MAX_PAGES {
            tracing::warn!(
                pages = MAX_PAGES,
                upcoming,
                "stopped listing scheduled streams before the horizon: old scheduled streams \
                 that never started fill the listing (cancel them)"
            );
        }
    }
    let min_tasks = floor(rule, upcoming);
    fleet.set_min(min_tasks).await?;
    Ok(Outcome {
        upcoming,
        min_tasks,
    })
}

/// The function's state, built once.
pub struct Prewarm {
    pub streams: Arc<dyn StreamStore>,
    pub fleet: Arc<dyn IngestFloor>,
    pub rule: FloorRule,
}

impl std::fmt::Debug for Prewarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prewarm")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

impl Prewarm {
    /// From the environment: `TABLE_NAME` (and the other `AwsSettings`) plus
    /// [`FloorSettings`]; an error names what is wrong.
    pub async fn from_env() -> Result<Prewarm, String> {
        let floor = FloorSettings::from_lookup(|name| std::env::var(name).ok())?;
        let settings = AwsSettings::from_env();
        let sdk = rill_aws::sdk_config(&settings).await;
        let aws = SignedClient::new(&sdk).map_err(|e| e.to_string())?;
        tracing::info!(
            scalable_target = %floor.resource_id,
            base_min = floor.rule.base_min,
            max = floor.rule.max,
            streams_per_task = floor.rule.streams_per_task,
            "ingest-prewarm configured"
        );
        Ok(Prewarm {
            streams: Arc::new(DynamoStore::new(
                rill_aws::dynamodb_client(&sdk),
                settings.table_name,
            )),
            fleet: Arc::new(ScalableTargetFloor::new(aws, floor.resource_id)),
            rule: floor.rule,
        })
    }

    /// One invocation.
    pub async fn handle(&self, event: PrewarmEvent) -> Result<Outcome, ReconcileError> {
        let outcome = reconcile(
            self.streams.as_ref(),
            self.fleet.as_ref(),
            &self.rule,
            time::now(),
        )
        .await?;
        tracing::info!(
            stream_id = event.stream_id.as_deref().unwrap_or("-"),
            upcoming = outcome.upcoming,
            min_tasks = outcome.min_tasks,
            "ingest minimum set"
        );
        Ok(outcome)
    }
}

/// `main` of `ingest-prewarm`: configuration first (a bad one fails the init), then events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::runtime::init_tracing();
    let prewarm = Arc::new(Prewarm::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "ingest-prewarm is not configured");
        lambda_runtime::Error::from(e)
    })?);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let prewarm = prewarm.clone();
            async move {
                // A payload that is not our shape is still a reason to reconcile.
                let parsed = serde_json::from_value(event.payload).unwrap_or_default();
                prewarm.handle(parsed).await.map_err(|e| {
                    tracing::error!(error = %e, "ingest-prewarm run failed");
                    lambda_runtime::Error::from(e.to_string())
                })
            }
        },
    ))
    .await
}
