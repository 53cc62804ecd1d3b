//! `rill_aws::ecs` against real things where they can exist here:
//!
//! - **moto** (one server per test binary, `$RILL_VENV/bin/moto_server`, else the repo's
//!   `.venv`) started with `INITIAL_NO_AUTH_ACTION_COUNT=3`: after the three requests that
//!   create the first IAM user it recomputes every request's SigV4 signature and checks the
//!   caller's IAM actions. The code under test signs as `node`, a user allowed only the
//!   ingest task role's `ecs:DescribeTasks`, `ec2:DescribeNetworkInterfaces` and
//!   `cloudwatch:PutMetricData` (moto checks actions, not resources or conditions). The
//!   cluster, service, task, ENI and Elastic IP are made by `tests/ecs_setup.py` with boto3,
//!   independently of the code under test.
//! - The **task metadata endpoint and the ECS agent** exist only inside an ECS task: a
//!   [`StandIn`] HTTP server plays them, serving a task metadata v4 document shaped like the
//!   Fargate examples in the AWS documentation ("Amazon ECS task metadata v4 examples for
//!   tasks on Fargate") and answering protection PUTs the way the agent does
//!   (`{"protection": {...}}`, `{"failure": {...}}`), recording every request.
//!
//! A missing moto is a failure, not a skip: CI has it (`scripts/setup.sh`).

mod common;
use common::{Keys, MotoProcess, run_setup, signed_client, start_moto};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use rill_aws::ecs::signed::xml_text;
use rill_aws::ecs::{
    EcsEnv, EcsError, EcsHost, METRIC_NAME, METRIC_NAMESPACE, MetricDimensions, Service,
    SignedClient, TaskInfo, discover_task,
};
use rill_core::fleet::NodeHost;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// moto

#[derive(Debug)]
struct Moto {
    url: String,
    admin: Keys,
    node: Keys,
    _process: MotoProcess,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        // SigV4 and IAM actions are checked from the fourth request on (module docs).
        let process = start_moto("INITIAL_NO_AUTH_ACTION_COUNT=3");
        let users = setup(&[&process.url, "users"]);
        let keys = |who: &str| Keys {
            id: users[who]["id"].as_str().expect("key id").to_owned(),
            secret: users[who]["secret"].as_str().expect("secret").to_owned(),
        };
        Moto {
            admin: keys("admin"),
            node: keys("node"),
            url: process.url.clone(),
            _process: process,
        }
    })
}

/// Runs `tests/ecs_setup.py` with boto3 and returns the JSON line it prints.
fn setup(args: &[&str]) -> Value {
    run_setup("ecs_setup.py", args)
}

/// A task in moto, made as `admin`: `public` associates an Elastic IP with its ENI.
fn moto_task(cluster: &str, public: bool) -> Value {
    let m = moto();
    setup(&[
        &m.url,
        "task",
        &m.admin.id,
        &m.admin.secret,
        cluster,
        if public { "eip" } else { "none" },
    ])
}

fn sdk(keys: &Keys) -> SdkConfig {
    common::sdk(&moto().url, keys)
}

/// The client of the code under test: the `node` user's keys.
fn node_client() -> SignedClient {
    signed_client(&moto().url, &moto().node)
}

fn admin_client() -> SignedClient {
    signed_client(&moto().url, &moto().admin)
}

// ---------------------------------------------------------------------------------------
// Stand-in for the ECS task metadata endpoint and the ECS agent

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    body: String,
}

type Handler = dyn Fn(&Recorded) -> (u16, String) + Send + Sync;

/// A stand-in for the ECS agent's task-local endpoints (task metadata v4 and task
/// scale-in protection), which exist only inside an ECS task: a minimal HTTP/1.1 server
/// that records each request and answers with `handler`.
struct StandIn {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl StandIn {
    async fn start(handler: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let (status, body) = handler(&request);
                    seen.lock().expect("lock").push(request);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        StandIn { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// The JSON bodies of the protection PUTs so far.
    fn protection_puts(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with("/task-protection/v1/state"))
            .map(|r| serde_json::from_str(&r.body).expect("JSON body"))
            .collect()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut start = lines.next()?.split(' ');
    let (method, path) = (start.next()?.to_owned(), start.next()?.to_owned());
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        body: String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned(),
    })
}

const METADATA_PATH: &str = "/v4/6a1c5f8b32e84f5a9d3a4c1b2e7f9d01-2531612879";
const AGENT_PATH: &str = "/api/6a1c5f8b32e84f5a9d3a4c1b2e7f9d01-2531612879";

/// `${ECS_CONTAINER_METADATA_URI_V4}/task` of a Fargate task, with the field names and
/// shapes of AWS's documented examples (values from the moto task).
fn task_metadata(task_arn: &str, cluster_arn: &str, private_ip: &str) -> Value {
    let task_id = task_arn.rsplit('/').next().expect("id");
    let dashed = private_ip.replace('.', "-");
    json!({
        "Cluster": cluster_arn,
        "TaskARN": task_arn,
        "Family": "rill-ingest",
        "Revision": "7",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 1, "Memory": 2048 },
        "PullStartedAt": "2026-11-20T12:09:45.059013479Z",
        "PullStoppedAt": "2026-11-20T12:10:41.166377771Z",
        "AvailabilityZone": "us-east-1a",
        "LaunchType": "FARGATE",
        "Containers": [{
            "DockerId": format!("{task_id}-2531612879"),
            "Name": "ingest",
            "DockerName": "ingest",
            "Image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/rill-ingest:latest",
            "ImageID": "sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553",
            "Labels": {
                "com.amazonaws.ecs.cluster": cluster_arn,
                "com.amazonaws.ecs.container-name": "ingest",
                "com.amazonaws.ecs.task-arn": task_arn,
                "com.amazonaws.ecs.task-definition-family": "rill-ingest",
                "com.amazonaws.ecs.task-definition-version": "7"
            },
            "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING",
            "Limits": { "CPU": 2, "Memory": 4096 },
            "CreatedAt": "2026-11-20T12:10:42.327434036Z",
            "StartedAt": "2026-11-20T12:10:42.327434036Z",
            "Type": "NORMAL",
            "ContainerARN": "arn:aws:ecs:us-east-1:123456789012:container/0206b271-b33f-47ab-86c6-a0ba208a70a9",
            "LogDriver": "awslogs",
            "LogOptions": {
                "awslogs-group": "/ecs/rill-ingest",
                "awslogs-region": "us-east-1",
                "awslogs-stream": format!("ingest/ingest/{task_id}")
            },
            "Networks": [{
                "NetworkMode": "awsvpc",
                "IPv4Addresses": [private_ip],
                "AttachmentIndex": 0,
                "MACAddress": "0e:10:e2:01:bd:91",
                "IPv4SubnetCIDRBlock": "10.0.0.0/8",
                "DomainNameServers": ["10.0.0.2"],
                "DomainNameSearchList": ["ec2.internal"],
                "PrivateDNSName": format!("ip-{dashed}.ec2.internal"),
                "SubnetGatewayIpv4Address": "10.0.0.1/8"
            }]
        }],
        "ClockDrift": {
            "ClockErrorBound": 0.446931,
            "ReferenceTimestamp": "2026-11-20T12:15:00Z",
            "ClockSynchronizationStatus": "SYNCHRONIZED"
        },
        "EphemeralStorageMetrics": { "Utilized": 261, "Reserved": 20496 }
    })
}

/// The agent's answer to a protection PUT that ECS accepted.
fn protection_granted(request: &Recorded, task_arn: &str) -> (u16, String) {
    let asked: Value = serde_json::from_str(&request.body).unwrap_or_default();
    let enabled = asked["ProtectionEnabled"].as_bool().unwrap_or(false);
    let mut protection = json!({ "ProtectionEnabled": enabled, "TaskArn": task_arn });
    if enabled {
        protection["ExpirationDate"] = json!("2026-11-20T13:15:00Z");
    }
    (200, json!({ "protection": protection }).to_string())
}

/// Metadata and agent for one moto task.
async fn stand_in_for(task: &Value) -> StandIn {
    let arn = task["taskArn"].as_str().expect("arn").to_owned();
    let document = task_metadata(
        &arn,
        task["clusterArn"].as_str().expect("cluster"),
        task["privateIp"].as_str().expect("private ip"),
    )
    .to_string();
    StandIn::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", p) if p == format!("{METADATA_PATH}/task") => (200, document.clone()),
        ("PUT", p) if p == format!("{AGENT_PATH}/task-protection/v1/state") => {
            protection_granted(r, &arn)
        }
        _ => (404, "{}".into()),
    })
    .await
}

fn env_of(stand_in: &StandIn) -> EcsEnv {
    EcsEnv {
        metadata_uri: Some(format!("{}{METADATA_PATH}", stand_in.url)),
        agent_uri: Some(format!("{}{AGENT_PATH}", stand_in.url)),
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn off_ecs_there_is_no_task_and_nothing_is_asked() {
    let client = SignedClient::new(
        &SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .behavior_version(BehaviorVersion::latest())
            .build(),
    )
    .expect("client");
    let task = discover_task(&EcsEnv::default(), &client)
        .await
        .expect("no error");
    assert_eq!(task, None);
}

#[tokio::test]
async fn discovers_the_task_its_service_and_its_public_ip() {
    let made = moto_task("rill-discover-eip", true);
    let stand_in = stand_in_for(&made).await;
    let task = discover_task(&env_of(&stand_in), &node_client())
        .await
        .expect("discovered")
        .expect("on ECS");

    let arn = made["taskArn"].as_str().expect("arn");
    assert_eq!(
        task,
        TaskInfo {
            task_arn: arn.to_owned(),
            task_id: arn.rsplit('/').next().expect("id").to_owned(),
            cluster: made["clusterArn"].as_str().expect("cluster").to_owned(),
            cluster_name: "rill-discover-eip".into(),
            service_name: Some("rill-discover-eip".into()),
            private_ip: made["privateIp"].as_str().expect("ip").to_owned(),
            availability_zone: Some("us-east-1a".into()),
            eni_id: Some(made["eni"].as_str().expect("eni").to_owned()),
            public_ip: Some(made["publicIp"].as_str().expect("eip").to_owned()),
        }
    );
    assert!(
        !task.task_id.contains('/') && task.task_id.len() >= 32,
        "{}",
        task.task_id
    );
    assert_eq!(
        MetricDimensions::from_task(&task),
        Some(MetricDimensions {
            cluster_name: "rill-discover-eip".into(),
            service_name: "rill-discover-eip".into(),
        })
    );
    let paths: Vec<String> = stand_in.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [format!("{METADATA_PATH}/task")]);
}

#[tokio::test]
async fn a_task_without_a_public_ip_is_discovered_without_one() {
    let made = moto_task("rill-discover-private", false);
    let stand_in = stand_in_for(&made).await;
    let task = discover_task(&env_of(&stand_in), &node_client())
        .await
        .expect("discovered")
        .expect("on ECS");
    assert_eq!(task.public_ip, None);
    assert_eq!(task.eni_id.as_deref(), made["eni"].as_str());
    assert_eq!(task.private_ip, made["privateIp"].as_str().expect("ip"));
}

#[tokio::test]
async fn a_task_ecs_does_not_know_is_an_error() {
    let made = moto_task("rill-discover-missing", false);
    let cluster = made["clusterArn"].as_str().expect("cluster");
    let ghost = "arn:aws:ecs:us-east-1:123456789012:task/rill-discover-missing/0123456789abcdef0123456789abcdef";
    let document = task_metadata(ghost, cluster, "10.0.0.9").to_string();
    let stand_in = StandIn::start(move |_| (200, document.clone())).await;
    let err = discover_task(&env_of(&stand_in), &node_client())
        .await
        .expect_err("unknown task");
    assert!(
        matches!(&err, EcsError::Response { operation, .. } if operation == "DescribeTasks"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused_by_aws_and_reported_with_its_code() {
    let mut keys = moto().node.clone();
    keys.secret = format!("{}x", keys.secret);
    let client = SignedClient::new(&sdk(&keys)).expect("client");
    let err = client
        .call_json(
            Service::Ecs,
            "AmazonEC2ContainerServiceV20141113.DescribeTasks",
            &json!({ "cluster": "default", "tasks": ["x"] }),
        )
        .await
        .expect_err("wrong secret");
    match err {
        EcsError::Api { status, code, .. } => {
            assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
        }
        other => panic!("{other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Scale-in protection

#[tokio::test]
async fn protection_reaches_the_agent_only_when_it_changes() {
    let arn =
        "arn:aws:ecs:us-east-1:123456789012:task/rill-ingest/0123456789abcdef0123456789abcdef";
    let agent = StandIn::start(move |r| protection_granted(r, arn)).await;
    let host = EcsHost::new(
        node_client(),
        env_of(&agent).agent_uri.expect("agent"),
        dimensions("rill-protect"),
    );

    for _ in 0..3 {
        host.protect(true).await.expect("protected");
    }
    for _ in 0..2 {
        host.protect(false).await.expect("unprotected");
    }
    host.protect(true).await.expect("protected again");

    assert_eq!(
        agent.protection_puts(),
        [
            json!({ "ProtectionEnabled": true, "ExpiresInMinutes": 60 }),
            json!({ "ProtectionEnabled": false }),
            json!({ "ProtectionEnabled": true, "ExpiresInMinutes": 60 }),
        ]
    );
    assert!(agent.requests().iter().all(|r| r.method == "PUT"));
}

#[tokio::test]
async fn protection_is_renewed_before_it_runs_out() {
    let arn =
        "arn:aws:ecs:us-east-1:123456789012:task/rill-ingest/0123456789abcdef0123456789abcdef";
    let agent = StandIn::start(move |r| protection_granted(r, arn)).await;
    // One-minute protections renewed when less than a minute is left: every call renews.
    let host = EcsHost::new(
        node_client(),
        env_of(&agent).agent_uri.expect("agent"),
        dimensions("rill-protect"),
    )
    .with_protection(1, Duration::from_secs(60));
    host.protect(true).await.expect("protected");
    host.protect(true).await.expect("renewed");
    assert_eq!(
        agent.protection_puts(),
        [
            json!({ "ProtectionEnabled": true, "ExpiresInMinutes": 1 }),
            json!({ "ProtectionEnabled": true, "ExpiresInMinutes": 1 }),
        ]
    );
}

#[tokio::test]
async fn a_refused_protection_is_an_error_and_asked_again() {
    let arn =
        "arn:aws:ecs:us-east-1:123456789012:task/rill-ingest/0123456789abcdef0123456789abcdef";
    let refused_once = Arc::new(Mutex::new(false));
    let agent = StandIn::start(move |r| {
        let mut refused = refused_once.lock().expect("lock");
        if *refused {
            return protection_granted(r, arn);
        }
        *refused = true;
        // What the agent relays when ECS refuses (ecs.Failure: Arn, Reason, Detail).
        let failure =
            json!({ "failure": { "Arn": arn, "Reason": "TASK_NOT_VALID", "Detail": null } });
        (200, failure.to_string())
    })
    .await;
    let host = EcsHost::new(
        node_client(),
        env_of(&agent).agent_uri.expect("agent"),
        dimensions("rill-protect"),
    );
    let err = host.protect(true).await.expect_err("refused");
    assert!(err.contains("TASK_NOT_VALID"), "{err}");
    host.protect(true)
        .await
        .expect("granted on the next heartbeat");
    host.protect(true).await.expect("already protected");
    assert_eq!(agent.protection_puts().len(), 2);
}

#[tokio::test]
async fn an_unreachable_agent_is_an_error_not_a_hang() {
    let host = EcsHost::new(node_client(), "http://127.0.0.1:9/api/x", dimensions("x"));
    let started = Instant::now();
    assert!(host.protect(true).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(6));
}

// ---------------------------------------------------------------------------------------
// Utilisation metric

fn dimensions(service: &str) -> MetricDimensions {
    MetricDimensions {
        cluster_name: "rill-ingest".into(),
        service_name: service.into(),
    }
}

/// `GetMetricStatistics` as `admin`: (sample count, average) of the last 10 minutes.
async fn metric_statistics(service: &str) -> (f64, f64) {
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::minutes(10)).to_rfc3339();
    let end = (now + chrono::Duration::minutes(1)).to_rfc3339();
    let xml = admin_client()
        .call_query(
            Service::CloudWatch,
            &[
                ("Action", "GetMetricStatistics"),
                ("Version", "2010-08-01"),
                ("Namespace", METRIC_NAMESPACE),
                ("MetricName", METRIC_NAME),
                ("Dimensions.member.1.Name", "ClusterName"),
                ("Dimensions.member.1.Value", "rill-ingest"),
                ("Dimensions.member.2.Name", "ServiceName"),
                ("Dimensions.member.2.Value", service),
                ("StartTime", &start),
                ("EndTime", &end),
                ("Period", "3600"),
                ("Statistics.member.1", "SampleCount"),
                ("Statistics.member.2", "Average"),
            ],
        )
        .await
        .expect("GetMetricStatistics");
    let number = |tag: &str| -> f64 {
        xml_text(&xml, tag)
            .unwrap_or_else(|| panic!("no {tag} in {xml}"))
            .parse()
            .expect("a number")
    };
    (number("SampleCount"), number("Average"))
}

#[tokio::test]
async fn utilisation_reaches_cloudwatch_as_the_scaling_policy_reads_it() {
    let service = "rill-metric-shape";
    let host = EcsHost::new(
        node_client(),
        "http://127.0.0.1:9/api/x",
        dimensions(service),
    );
    host.report_utilisation(3, 4).await.expect("sent");
    // Within the minute: dropped, not sent.
    host.report_utilisation(1, 4).await.expect("rate-limited");
    host.report_utilisation(0, 4).await.expect("rate-limited");

    assert_eq!(metric_statistics(service).await, (1.0, 0.75));

    let listed = admin_client()
        .call_query(
            Service::CloudWatch,
            &[
                ("Action", "ListMetrics"),
                ("Version", "2010-08-01"),
                ("Namespace", METRIC_NAMESPACE),
                ("MetricName", METRIC_NAME),
                ("Dimensions.member.1.Name", "ServiceName"),
                ("Dimensions.member.1.Value", service),
            ],
        )
        .await
        .expect("ListMetrics");
    for expected in [
        "<Namespace>Rill/Ingest</Namespace>",
        "<MetricName>Utilisation</MetricName>",
        "<Name>ClusterName</Name>",
        "<Value>rill-ingest</Value>",
        "<Name>ServiceName</Name>",
        "<Value>rill-metric-shape</Value>",
    ] {
        assert!(listed.contains(expected), "{expected} not in {listed}");
    }
}

#[tokio::test]
async fn each_interval_sends_its_latest_sample() {
    let service = "rill-metric-interval";
    let host = EcsHost::new(
        node_client(),
        "http://127.0.0.1:9/api/x",
        dimensions(service),
    )
    // Long enough that the first send (slow on a loaded machine) cannot use up the
    // interval before the second report; the sleep is the window, not a wait.
    .with_metric_every(Duration::from_secs(2));
    host.report_utilisation(1, 2).await.expect("sent");
    host.report_utilisation(2, 2).await.expect("dropped");
    tokio::time::sleep(Duration::from_millis(2050)).await;
    // More streams than capacity (reconnect pipelines): reported as it is, above 1.
    host.report_utilisation(3, 2).await.expect("sent");
    let (count, average) = metric_statistics(service).await;
    assert_eq!(count, 2.0);
    assert!((average - 1.0).abs() < 1e-9, "{average}");
}
