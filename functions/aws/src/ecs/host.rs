//! [`EcsHost`]: `rill-core`'s [`NodeHost`] on ECS.
//!
//! - **Scale-in protection** goes to the ECS agent (`PUT ${ECS_AGENT_URI}/task-protection/v1/state`
//!   with `{"ProtectionEnabled": true, "ExpiresInMinutes": N}`, or `{"ProtectionEnabled":
//!   false}`); the agent calls `ecs:UpdateTaskProtection` with the task role. The node calls
//!   [`NodeHost::protect`] every heartbeat (5 s); a request goes out only on the first call,
//!   when the state changes, or when a granted protection has less than
//!   [`PROTECTION_REFRESH_BEFORE`] of its [`PROTECTION_MINUTES`] left, so a node that dies
//!   loses its protection within the hour and a live one never lets it lapse. A refused or
//!   failed request is retried on the next call.
//! - **Utilisation** (`active / capacity`, not clamped: a node carrying more than its
//!   capacity reports more than 1) goes to CloudWatch as the metric the scaling policy in
//!   `infra/template.yaml` tracks: namespace [`METRIC_NAMESPACE`], name [`METRIC_NAME`], unit
//!   `None`, dimensions `ClusterName` and `ServiceName` ([`MetricDimensions`]), averaged
//!   over the service. At most one `PutMetricData` per [`METRIC_EVERY`] (the node reports
//!   every 5 s): the latest sample is sent, the others are dropped. A failed send waits for
//!   the next interval too; one missing minute does not move target tracking.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rill_core::fleet::NodeHost;
use tokio::sync::Mutex;

use super::signed::{Service, SignedClient};
use super::{EcsError, TaskInfo};

/// CloudWatch namespace of the scaling metric (the task role may write only this one).
pub const METRIC_NAMESPACE: &str = "Rill/Ingest";
/// The scaling metric: active streams / capacity.
pub const METRIC_NAME: &str = "Utilisation";
/// Shortest interval between two `PutMetricData` calls.
pub const METRIC_EVERY: Duration = Duration::from_secs(60);
/// How long one protection request protects the task (the agent accepts 1..=2880).
pub const PROTECTION_MINUTES: u32 = 60;
/// A protection is renewed once less than this is left of it.
pub const PROTECTION_REFRESH_BEFORE: Duration = Duration::from_secs(10 * 60);

/// The dimensions the scaling policy selects the metric by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDimensions {
    /// `ClusterName`: the ECS cluster's short name.
    pub cluster_name: String,
    /// `ServiceName`: the ECS service's name.
    pub service_name: String,
}

impl MetricDimensions {
    /// The task's own cluster and service; `None` for a task no service started.
    pub fn from_task(task: &TaskInfo) -> Option<MetricDimensions> {
        Some(MetricDimensions {
            cluster_name: task.cluster_name.clone(),
            service_name: task.service_name.clone()?,
        })
    }
}

/// The platform services of a node running as an ECS task.
#[derive(Debug)]
pub struct EcsHost {
    aws: SignedClient,
    agent_uri: String,
    dimensions: MetricDimensions,
    protection_minutes: u32,
    refresh_before: Duration,
    metric_every: Duration,
    /// The last protection state the agent accepted, and when it was asked for.
    protection: Mutex<Option<(bool, Instant)>>,
    /// When the metric was last sent.
    metric_sent: Mutex<Option<Instant>>,
}

impl EcsHost {
    /// `agent_uri` is `ECS_AGENT_URI` ([`EcsEnv::agent_uri`](super::EcsEnv::agent_uri)).
    pub fn new(
        aws: SignedClient,
        agent_uri: impl Into<String>,
        dimensions: MetricDimensions,
    ) -> EcsHost {
        EcsHost {
            aws,
            agent_uri: agent_uri.into().trim_end_matches('/').to_owned(),
            dimensions,
            protection_minutes: PROTECTION_MINUTES,
            refresh_before: PROTECTION_REFRESH_BEFORE,
            metric_every: METRIC_EVERY,
            protection: Mutex::new(None),
            metric_sent: Mutex::new(None),
        }
    }

    /// Overrides how long each protection lasts (clamped to the agent's 1..=2880 minutes)
    /// and how long before its end it is renewed.
    pub fn with_protection(mut self, minutes: u32, refresh_before: Duration) -> EcsHost {
        self.protection_minutes = minutes.clamp(1, 2880);
        self.refresh_before = refresh_before;
        self
    }

    /// Overrides the shortest interval between two metric sends.
    pub fn with_metric_every(mut self, every: Duration) -> EcsHost {
        self.metric_every = every;
        self
    }

    pub fn dimensions(&self) -> &MetricDimensions {
        &self.dimensions
    }

    async fn set_protection(&self, enabled: bool) -> Result<(), EcsError> {
        let mut last = self.protection.lock().await;
        let lasts = Duration::from_secs(u64::from(self.protection_minutes) * 60);
        let up_to_date = match *last {
            Some((state, _)) if state != enabled => false,
            Some((false, _)) => true,
            Some((true, asked_at)) => asked_at.elapsed() + self.refresh_before < lasts,
            None => false,
        };
        if up_to_date {
            return Ok(());
        }
        let body = if enabled {
            serde_json::json!({
                "ProtectionEnabled": true,
                "ExpiresInMinutes": self.protection_minutes,
            })
        } else {
            serde_json::json!({ "ProtectionEnabled": false })
        };
        // Measured before the request, so the local idea of the expiry is never later than
        // the agent's.
        let asked_at = Instant::now();
        let url = format!("{}/task-protection/v1/state", self.agent_uri);
        let (status, reply) = self.aws.put_local_json(&url, &body).await?;
        let doc: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
        // The agent answers {"protection": {...}} on success, {"failure": {Arn, Reason,
        // Detail}} when ECS refused, {"error": {Arn, Code, Message}} when the call failed.
        if let Some(failure) = doc.get("failure") {
            return Err(EcsError::Protection(format!(
                "refused: {} {}",
                failure["Reason"].as_str().unwrap_or("?"),
                failure["Detail"].as_str().unwrap_or("")
            )));
        }
        if let Some(error) = doc.get("error") {
            return Err(EcsError::Protection(format!(
                "HTTP {status} {}: {}",
                error["Code"].as_str().unwrap_or("?"),
                error["Message"].as_str().unwrap_or("")
            )));
        }
        let granted = doc["protection"]["ProtectionEnabled"].as_bool();
        if !(200..300).contains(&status) || granted != Some(enabled) {
            return Err(EcsError::Protection(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            )));
        }
        tracing::debug!(
            enabled,
            expires = ?doc["protection"]["ExpirationDate"].as_str(),
            "task scale-in protection set"
        );
        *last = Some((enabled, asked_at));
        Ok(())
    }

    async fn put_utilisation(&self, active: u32, capacity: u32) -> Result<(), EcsError> {
        let mut sent = self.metric_sent.lock().await;
        if sent.is_some_and(|at| at.elapsed() < self.metric_every) {
            return Ok(());
        }
        *sent = Some(Instant::now());
        let value = (f64::from(active) / f64::from(capacity.max(1))).to_string();
        self.aws
            .call_query(
                Service::CloudWatch,
                &[
                    ("Action", "PutMetricData"),
                    ("Version", "2010-08-01"),
                    ("Namespace", METRIC_NAMESPACE),
                    ("MetricData.member.1.MetricName", METRIC_NAME),
                    ("MetricData.member.1.Value", &value),
                    ("MetricData.member.1.Unit", "None"),
                    (
                        "MetricData.member.1.Dimensions.member.1.Name",
                        "ClusterName",
                    ),
                    (
                        "MetricData.member.1.Dimensions.member.1.Value",
                        &self.dimensions.cluster_name,
                    ),
                    (
                        "MetricData.member.1.Dimensions.member.2.Name",
                        "ServiceName",
                    ),
                    (
                        "MetricData.member.1.Dimensions.member.2.Value",
                        &self.dimensions.service_name,
                    ),
                ],
            )
            .await?;
        tracing::debug!(active, capacity, "utilisation reported");
        Ok(())
    }
}

#[async_trait]
impl NodeHost for EcsHost {
    async fn protect(&self, protected: bool) -> Result<(), String> {
        self.set_protection(protected)
            .await
            .map_err(|e| e.to_string())
    }

    async fn report_utilisation(&self, active: u32, capacity: u32) -> Result<(), String> {
        self.put_utilisation(active, capacity)
            .await
            .map_err(|e| e.to_string())
    }
}
