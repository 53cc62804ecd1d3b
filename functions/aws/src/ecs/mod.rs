//! What an ingest node running as an ECS Fargate task needs from the platform: who and
//! where it is ([`discover_task`] → [`TaskInfo`]), and [`EcsHost`], the `rill-core`
//! [`NodeHost`](rill_core::fleet::NodeHost) port on ECS (task scale-in protection through
//! the ECS agent, the `Rill/Ingest` `Utilisation` metric in CloudWatch).
//!
//! No SDK crate per service: the three AWS calls (ECS `DescribeTasks`, EC2
//! `DescribeNetworkInterfaces`, CloudWatch `PutMetricData`) are plain HTTP requests signed
//! with SigV4 by [`SignedClient`], with the credentials, region and endpoint override of the
//! node's `SdkConfig`. The IAM side is `IngestTaskRole` in `infra/template.yaml`.
//!
//! Environment read (by [`EcsEnv::from_env`]): `ECS_CONTAINER_METADATA_URI_V4` (set by ECS
//! in every container; unset means "not on ECS") and `ECS_AGENT_URI` (the agent endpoint
//! that takes scale-in protection). `AWS_ENDPOINT_URL` acts through the `SdkConfig`.
//!
//! Invariants:
//! - discovery is read-only and never guesses: a task without a public IP is reported with
//!   `public_ip: None`, not with its private address;
//! - no credential or signature is ever logged or put in an error; errors carry the
//!   operation, HTTP status, and AWS's error code and message;
//! - every request has a deadline (see [`signed`]).

mod host;
pub mod signed;

use serde::Deserialize;

pub use host::{
    EcsHost, METRIC_EVERY, METRIC_NAME, METRIC_NAMESPACE, MetricDimensions, PROTECTION_MINUTES,
    PROTECTION_REFRESH_BEFORE,
};
pub use signed::{Service, SignedClient};

/// The ECS endpoints of this container, from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsEnv {
    /// `ECS_CONTAINER_METADATA_URI_V4`.
    pub metadata_uri: Option<String>,
    /// `ECS_AGENT_URI`.
    pub agent_uri: Option<String>,
}

impl EcsEnv {
    pub fn from_env() -> EcsEnv {
        EcsEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same from any variable lookup; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> EcsEnv {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_end_matches('/').to_owned())
        };
        EcsEnv {
            metadata_uri: var("ECS_CONTAINER_METADATA_URI_V4"),
            agent_uri: var("ECS_AGENT_URI"),
        }
    }
}

/// The task this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Full task ARN (`arn:aws:ecs:{region}:{account}:task/{cluster}/{id}`).
    pub task_arn: String,
    /// The ARN's last segment: unique per task, the node id on ECS.
    pub task_id: String,
    /// The cluster as the metadata names it (an ARN on Fargate, or a short name).
    pub cluster: String,
    /// The cluster's short name (the `ClusterName` metric dimension).
    pub cluster_name: String,
    /// The ECS service that started the task (from its `group`, `service:{name}`); `None`
    /// for a standalone task.
    pub service_name: Option<String>,
    /// The task ENI's private IPv4 address.
    pub private_ip: String,
    pub availability_zone: Option<String>,
    /// The task's elastic network interface (awsvpc), when ECS reports one.
    pub eni_id: Option<String>,
    /// The ENI's public IPv4 address (`AssignPublicIp` or an Elastic IP), if any.
    pub public_ip: Option<String>,
}

/// Why the platform could not be asked or answered nonsense.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("signing: {0}")]
    Signing(String),
    /// Connection, timeout, or an unreadable body.
    #[error("transport: {0}")]
    Transport(String),
    /// AWS answered with an error.
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Api {
        operation: String,
        status: u16,
        code: String,
        message: String,
    },
    /// AWS or a task-local endpoint answered, but not with what the operation promises.
    #[error("{operation}: {reason}")]
    Response { operation: String, reason: String },
    /// The ECS agent refused or failed a protection change.
    #[error("task protection: {0}")]
    Protection(String),
}

/// Who and where this task is: `None` when `ECS_CONTAINER_METADATA_URI_V4` is unset (not
/// on ECS). Otherwise reads the task metadata (`{uri}/task`: ARN, cluster, private IPv4),
/// then `ecs:DescribeTasks` (the service and the ENI attachment), then
/// `ec2:DescribeNetworkInterfaces` (the ENI's public IPv4). Any failed step is an error:
/// the caller decides whether a node without its addresses may still start.
pub async fn discover_task(env: &EcsEnv, aws: &SignedClient) -> Result<Option<TaskInfo>, EcsError> {
    let Some(metadata_uri) = &env.metadata_uri else {
        return Ok(None);
    };
    let metadata = task_metadata(aws, metadata_uri).await?;
    let described = describe_task(aws, &metadata.cluster, &metadata.task_arn).await?;
    let private_ip = metadata
        .private_ip()
        .or(described.private_ip)
        .ok_or_else(|| EcsError::Response {
            operation: "task metadata".into(),
            reason: "no IPv4 address on any container network".into(),
        })?;
    let public_ip = match &described.eni_id {
        Some(eni) => public_ip(aws, eni).await?,
        None => None,
    };
    let task = TaskInfo {
        task_id: last_segment(&metadata.task_arn).to_owned(),
        cluster_name: last_segment(&metadata.cluster).to_owned(),
        task_arn: metadata.task_arn,
        cluster: metadata.cluster,
        service_name: described.service_name,
        private_ip,
        availability_zone: metadata.availability_zone,
        eni_id: described.eni_id,
        public_ip,
    };
    tracing::info!(
        task_id = %task.task_id,
        cluster = %task.cluster_name,
        service = ?task.service_name,
        private_ip = %task.private_ip,
        public_ip = ?task.public_ip,
        "running as an ECS task"
    );
    Ok(Some(task))
}

/// The parts of the task metadata v4 document (`${ECS_CONTAINER_METADATA_URI_V4}/task`)
/// that discovery uses.
#[derive(Debug, Deserialize)]
struct TaskMetadata {
    #[serde(rename = "Cluster")]
    cluster: String,
    #[serde(rename = "TaskARN")]
    task_arn: String,
    #[serde(rename = "AvailabilityZone")]
    availability_zone: Option<String>,
    #[serde(rename = "Containers", default)]
    containers: Vec<ContainerMetadata>,
}

#[derive(Debug, Deserialize)]
struct ContainerMetadata {
    #[serde(rename = "Networks", default)]
    networks: Vec<NetworkMetadata>,
}

#[derive(Debug, Deserialize)]
struct NetworkMetadata {
    #[serde(rename = "IPv4Addresses", default)]
    ipv4_addresses: Vec<String>,
}

impl TaskMetadata {
    /// Every container of an awsvpc task shares the task ENI: the first address found.
    fn private_ip(&self) -> Option<String> {
        self.containers
            .iter()
            .flat_map(|c| &c.networks)
            .flat_map(|n| &n.ipv4_addresses)
            .next()
            .cloned()
    }
}

async fn task_metadata(aws: &SignedClient, uri: &str) -> Result<TaskMetadata, EcsError> {
    let (status, body) = aws.get_local(&format!("{uri}/task")).await?;
    let bad = |reason: String| EcsError::Response {
        operation: "task metadata".into(),
        reason,
    };
    if status != 200 {
        return Err(bad(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    serde_json::from_slice(&body).map_err(|e| bad(format!("unexpected document: {e}")))
}

/// What `DescribeTasks` adds to the metadata.
#[derive(Debug, Default)]
struct DescribedTask {
    service_name: Option<String>,
    eni_id: Option<String>,
    private_ip: Option<String>,
}

async fn describe_task(
    aws: &SignedClient,
    cluster: &str,
    task_arn: &str,
) -> Result<DescribedTask, EcsError> {
    let reply = aws
        .call_json(
            Service::Ecs,
            "AmazonEC2ContainerServiceV20141113.DescribeTasks",
            &serde_json::json!({ "cluster": cluster, "tasks": [task_arn] }),
        )
        .await?;
    let Some(task) = reply["tasks"].as_array().and_then(|t| t.first()) else {
        let reason = reply["failures"][0]["reason"].as_str().unwrap_or("no task");
        return Err(EcsError::Response {
            operation: "DescribeTasks".into(),
            reason: format!("{task_arn}: {reason}"),
        });
    };
    let detail = |name: &str| {
        task["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "ElasticNetworkInterface")
            .flat_map(|a| a["details"].as_array().into_iter().flatten())
            .find(|d| d["name"] == name)
            .and_then(|d| d["value"].as_str())
            .map(str::to_owned)
    };
    Ok(DescribedTask {
        service_name: task["group"]
            .as_str()
            .and_then(|g| g.strip_prefix("service:"))
            .map(str::to_owned),
        eni_id: detail("networkInterfaceId"),
        private_ip: detail("privateIPv4Address"),
    })
}

async fn public_ip(aws: &SignedClient, eni_id: &str) -> Result<Option<String>, EcsError> {
    let xml = aws
        .call_query(
            Service::Ec2,
            &[
                ("Action", "DescribeNetworkInterfaces"),
                ("Version", "2016-11-15"),
                ("NetworkInterfaceId.1", eni_id),
            ],
        )
        .await?;
    if !xml.contains(eni_id) {
        return Err(EcsError::Response {
            operation: "DescribeNetworkInterfaces".into(),
            reason: format!("{eni_id} is not in the response"),
        });
    }
    Ok(signed::xml_inner(&xml, "association")
        .and_then(|association| signed::xml_text(association, "publicIp"))
        .filter(|ip| !ip.is_empty()))
}

/// The last `/`-separated segment of an ARN (or the whole of a short name).
fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_last_segment_of_long_and_short_arns() {
        assert_eq!(
            last_segment("arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd"),
            "158d1c8083dd"
        );
        assert_eq!(
            last_segment("arn:aws:ecs:us-east-2:012345678910:task/9781c248-0edd"),
            "9781c248-0edd"
        );
        assert_eq!(
            last_segment("arn:aws:ecs:us-west-2:111122223333:cluster/rill-ingest"),
            "rill-ingest"
        );
        assert_eq!(last_segment("default"), "default");
    }

    #[test]
    fn empty_variables_mean_not_on_ecs() {
        let env =
            EcsEnv::from_lookup(|name| (name == "ECS_CONTAINER_METADATA_URI_V4").then(String::new));
        assert_eq!(env, EcsEnv::default());
        let env = EcsEnv::from_lookup(|name| match name {
            "ECS_CONTAINER_METADATA_URI_V4" => Some("http://169.254.170.2/v4/abc/".into()),
            "ECS_AGENT_URI" => Some("http://169.254.170.2/api/abc".into()),
            _ => None,
        });
        assert_eq!(
            env.metadata_uri.as_deref(),
            Some("http://169.254.170.2/v4/abc")
        );
        assert_eq!(
            env.agent_uri.as_deref(),
            Some("http://169.254.170.2/api/abc")
        );
    }
}
