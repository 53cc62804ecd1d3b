//! The composition root: the one place that decides which adapters sit behind the node's
//! ports (the AWS ones, from `rill-aws`), binds the listeners and runs the node until
//! shutdown.
//!
//! Two steps, so tests can bind port 0 and learn the addresses before serving (the
//! mini-redis pattern): [`Ingest::bind`] then [`Ingest::serve`]; [`run`] does both and
//! prints the line test harnesses and `scripts/dev.sh` wait for.
//!
//! While serving, the node heartbeats into the fleet registry every
//! [`rill_core::fleet::HEARTBEAT_EVERY`], renewing its streams' leases and stopping (without
//! a write) any stream whose lease it lost.
//!
//! Shutdown order (SIGTERM on ECS, Ctrl-C locally): first the drain — the registry says
//! `draining`, new publishes are refused, current streams go on for up to `DRAIN_SECONDS`
//! (ECS gives 120 s between SIGTERM and SIGKILL) or until they end on their own; then RTMP
//! and WHIP stop accepting and end their sessions (each sink gets its End),
//! [`Node::shutdown`] finalises every remaining stream (ENDLIST, status, lease released)
//! within [`SHUTDOWN_GRACE`], the node leaves the registry, and only then does HTTP stop —
//! so `/healthz` and `/metrics` keep answering while streams are being finalised.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::fleet::{Identity, Membership};
use crate::node::{Node, Ports};
use crate::publish::Authoriser;
use crate::rtmp::RtmpServer;
use crate::whip::{WhipConfig, WhipServer};

/// How long [`Node::shutdown`] waits for each stream to finalise; below ECS's default 30 s
/// stop timeout, so the task is not killed mid-finalisation.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// On ECS, the node could not learn its own task and addresses.
    #[error("ECS task discovery failed: {0}")]
    Discovery(rill_aws::ecs::EcsError),
}

/// Where the node listens (the real ports when the configuration asked for port 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The WebRTC media socket (UDP).
    pub webrtc: SocketAddr,
}

/// A bound, not yet serving node.
#[derive(Debug)]
pub struct Ingest {
    node: Node,
    rtmp: RtmpServer,
    whip: WhipServer,
    http: TcpListener,
    addresses: Addresses,
    drain: Duration,
}

/// The adapters behind the node's ports (from `rill-aws`), with the node's configuration
/// completed from the platform: on ECS the task id, private and public IP fill in what the
/// environment did not set explicitly.
pub async fn aws_ports(mut config: Config) -> Result<(Config, Ports), RunError> {
    let aws = rill_aws::ingest::connect(&config.aws, &config.ecs)
        .await
        .map_err(RunError::Discovery)?;
    if let Some(task) = &aws.task {
        tracing::info!(task = %task.task_id, private_ip = %task.private_ip, public_ip = ?task.public_ip, "running on ECS");
        config
            .fleet
            .node_id
            .get_or_insert_with(|| task.task_id.clone());
        if config.webrtc_advertise_ip.is_none() {
            config.webrtc_advertise_ip = task.public_ip.as_deref().and_then(|ip| ip.parse().ok());
        }
        if config.fleet.private_url.is_none() {
            let ip = task.private_ip.parse().ok();
            config.fleet.private_url =
                Some(crate::fleet::default_private_url(config.http_addr, ip));
        }
    }
    let ports = Ports {
        streams: aws.store.clone(),
        metrics: aws.store.clone(),
        fleet: aws.store,
        host: aws.host,
        media: aws.media,
    };
    Ok((config, ports))
}

impl Ingest {
    /// Builds the node on `ports` and binds RTMP, WebRTC UDP and HTTP.
    pub async fn bind(config: &Config, ports: Ports) -> Result<Ingest, RunError> {
        let node = Node::new(ports, config.node.clone());
        // One authoriser for both protocols: the publish contract is theirs in common.
        let auth_node = node.clone();
        let authoriser: Arc<dyn Authoriser> = Arc::new(move |request| {
            let node = auth_node.clone();
            async move { node.authorise(request).await }
        });
        let bind_error = |what, addr| move |source| RunError::Bind { what, addr, source };

        let (rtmp, rtmp_addr) = RtmpServer::bind(config.rtmp_addr, authoriser.clone())
            .await
            .map_err(bind_error("RTMP", config.rtmp_addr))?;
        let whip_config = WhipConfig {
            bind: config.webrtc_udp_addr,
            advertise_ip: config.webrtc_advertise_ip,
            ..WhipConfig::default()
        };
        let whip = WhipServer::bind(whip_config, authoriser)
            .await
            .map_err(bind_error("WebRTC UDP", config.webrtc_udp_addr))?;
        node.set_whip(whip.handle());
        let http = TcpListener::bind(config.http_addr)
            .await
            .map_err(bind_error("HTTP", config.http_addr))?;
        let http_addr = http
            .local_addr()
            .map_err(bind_error("HTTP", config.http_addr))?;
        let addresses = Addresses {
            rtmp: rtmp_addr,
            http: http_addr,
            webrtc: whip.local_addr(),
        };
        let fleet = &config.fleet;
        let identity = Identity {
            id: fleet
                .node_id
                .clone()
                .unwrap_or_else(crate::fleet::generated_id),
            public_ip: config.webrtc_advertise_ip.map(|ip| ip.to_string()),
            private_url: fleet
                .private_url
                .clone()
                .unwrap_or_else(|| crate::fleet::default_private_url(http_addr, None)),
            rtmp_addr,
        };
        let capacity = fleet.capacity.unwrap_or_else(|| {
            rill_core::fleet::capacity_for(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            )
        });
        let ports = node.ports().clone();
        node.join(Membership::new(identity, capacity, ports.fleet, ports.host));
        Ok(Ingest {
            node,
            rtmp,
            whip,
            http,
            addresses,
            drain: fleet.drain,
        })
    }

    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Serves until `shutdown` completes, then shuts down in the order of the module docs.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        let Ingest {
            node,
            rtmp,
            whip,
            http,
            drain,
            ..
        } = self;
        let heartbeat = tokio::spawn(heartbeat(node.clone()));
        let (stop_media, media_rx) = watch::channel(false);
        let (stop_http, mut http_rx) = watch::channel(false);
        let rtmp_task = tokio::spawn(rtmp.run(media_rx.clone()));
        let whip_router = whip.handle().router();
        let whip_task = tokio::spawn(whip.run(media_rx));
        let router = crate::http::router(node.clone()).merge(whip_router);
        let mut http_task = tokio::spawn(async move {
            axum::serve(
                http,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = http_rx.wait_for(|stop| *stop).await;
            })
            .await
        });

        let failed = tokio::select! {
            () = shutdown => None,
            // The HTTP server only returns early if it failed: stop everything else too.
            result = &mut http_task => Some(match result {
                Ok(Ok(())) => std::io::Error::other("HTTP server stopped"),
                Ok(Err(e)) => e,
                Err(join) => std::io::Error::other(join),
            }),
        };
        if failed.is_none() {
            drain_streams(&node, drain).await;
        }
        tracing::info!("shutting down: no new publishes; finalising every stream");
        heartbeat.abort();
        let _ = stop_media.send(true);
        let _ = rtmp_task.await;
        let _ = whip_task.await;
        node.shutdown(SHUTDOWN_GRACE).await;
        if let Some(m) = node.membership() {
            m.leave().await;
        }
        if let Some(e) = failed {
            return Err(RunError::Serve(e));
        }
        let _ = stop_http.send(true);
        match http_task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RunError::Serve(e)),
            Err(join) => Err(RunError::Serve(std::io::Error::other(join))),
        }
    }
}

/// Registry heartbeat and lease renewal, every `HEARTBEAT_EVERY` from the start.
async fn heartbeat(node: Node) {
    let Some(membership) = node.membership().cloned() else {
        return;
    };
    let mut every = tokio::time::interval(rill_core::fleet::HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sweep_every =
        (crate::sweep::SWEEP_EVERY.as_secs() / rill_core::fleet::HEARTBEAT_EVERY.as_secs()).max(1);
    for beat in 0u64.. {
        every.tick().await;
        let lost = membership.tick(node.carried()).await;
        node.abandon(&lost);
        if beat % sweep_every == sweep_every - 1 && !membership.is_draining() {
            crate::sweep::sweep(&node).await;
        }
    }
}

/// The drain: the registry says `draining` at once (new publishes are refused from now),
/// and current streams go on until they end or `limit` passes.
async fn drain_streams(node: &Node, limit: Duration) {
    let Some(membership) = node.membership() else {
        return;
    };
    membership.drain(node.carried()).await;
    if node.carried() == 0 || limit.is_zero() {
        return;
    }
    tracing::info!(
        streams = node.carried(),
        limit_s = limit.as_secs(),
        "draining: current streams go on, new publishes are refused"
    );
    let deadline = tokio::time::Instant::now() + limit;
    while node.carried() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the node on AWS (or moto) until `shutdown` completes: logs the configuration, binds,
/// prints `rill-ingest listening on rtmp://{rtmp} http://{http}` to stdout, serves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let (config, ports) = aws_ports(config).await?;
    config.log();
    let ingest = Ingest::bind(&config, ports).await?;
    let a = ingest.addresses();
    tracing::info!(rtmp = %a.rtmp, http = %a.http, webrtc_udp = %a.webrtc, "ingest node listening");
    // Test harnesses and scripts/dev.sh read this exact line to learn the ports.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "rill-ingest listening on rtmp://{} http://{}",
            a.rtmp, a.http
        );
        let _ = out.flush();
    }
    ingest.serve(shutdown).await?;
    tracing::info!("ingest node stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real adapters pointed at a port where nothing listens: without a publisher the node
    /// never calls them, so the lifecycle runs without moto.
    async fn bound_on_free_ports() -> Ingest {
        let config = Config::from_lookup(|name| match name {
            "RTMP_ADDR" | "INGEST_HTTP_ADDR" | "WEBRTC_UDP_ADDR" => Some("127.0.0.1:0".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:1".into()),
            _ => None,
        })
        .expect("valid configuration");
        let (config, ports) = aws_ports(config).await.expect("not on ECS: no discovery");
        Ingest::bind(&config, ports).await.expect("free ports bind")
    }

    #[tokio::test]
    async fn port_zero_binds_free_ports_and_reports_them() {
        let ingest = bound_on_free_ports().await;
        let a = ingest.addresses();
        assert!(a.rtmp.port() != 0 && a.http.port() != 0 && a.webrtc.port() != 0);
        assert_ne!(a.rtmp, a.http);
    }

    #[tokio::test]
    async fn serves_until_shutdown_then_stops_accepting_and_returns() {
        let ingest = bound_on_free_ports().await;
        let a = ingest.addresses();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ingest.serve(async move {
            let _ = stopped.await;
        }));

        let health = reqwest::get(format!("http://{}/healthz", a.http))
            .await
            .expect("HTTP answers");
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.expect("body"), "ok");
        let metrics = reqwest::get(format!("http://{}/metrics", a.http))
            .await
            .expect("HTTP answers")
            .text()
            .await
            .expect("body");
        assert!(metrics.contains("rill_ingest_streams 0"), "{metrics}");
        tokio::net::TcpStream::connect(a.rtmp)
            .await
            .expect("RTMP accepts");

        stop.send(()).expect("serve is waiting");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returns promptly")
            .expect("no panic")
            .expect("clean shutdown");
        assert!(tokio::net::TcpStream::connect(a.rtmp).await.is_err());
        assert!(tokio::net::TcpStream::connect(a.http).await.is_err());
    }
}
