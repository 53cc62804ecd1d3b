//! `rill-ingest`: RTMP (and WHIP) in, HLS to S3 out. See the library docs.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rill_ingest::node::{Node, NodeConfig};
use rill_ingest::rtmp::RtmpServer;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = rill_aws::AwsSettings::from_env();
    let sdk = rill_aws::sdk_config(&settings).await;
    let store = Arc::new(rill_aws::store::DynamoStore::new(
        rill_aws::dynamodb_client(&sdk),
        settings.table_name.clone(),
    ));
    let config = NodeConfig::from_env(settings.bucket_name.clone());
    let media = Arc::new(rill_aws::media_bucket::S3MediaBucket::new(
        rill_aws::s3_client(&sdk),
        settings.bucket_name.clone(),
    ));
    let node = Node::new(store, media, config.clone());

    let auth_node = node.clone();
    let authoriser: Arc<dyn rill_ingest::publish::Authoriser> = Arc::new(move |req| {
        let node = auth_node.clone();
        async move { node.authorise(req).await }
    });
    let (rtmp, rtmp_addr) =
        match RtmpServer::bind(config.rtmp_addr.as_str(), authoriser.clone()).await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("rill-ingest: cannot bind RTMP on {}: {e}", config.rtmp_addr);
                return ExitCode::FAILURE;
            }
        };
    let http = match tokio::net::TcpListener::bind(config.http_addr.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rill-ingest: cannot bind HTTP on {}: {e}", config.http_addr);
            return ExitCode::FAILURE;
        }
    };
    let http_addr = http.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let whip_config = rill_ingest::whip::WhipConfig {
        bind: match config.webrtc_udp_addr.parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "rill-ingest: WEBRTC_UDP_ADDR {:?}: {e}",
                    config.webrtc_udp_addr
                );
                return ExitCode::FAILURE;
            }
        },
        advertise_ip: config.webrtc_advertise_ip,
        ..Default::default()
    };
    let whip = match rill_ingest::whip::WhipServer::bind(whip_config, authoriser).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "rill-ingest: cannot bind WebRTC UDP on {}: {e}",
                config.webrtc_udp_addr
            );
            return ExitCode::FAILURE;
        }
    };
    node.set_whip(whip.handle());
    let whip_handle = whip.handle();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let rtmp_task = tokio::spawn(rtmp.run(shutdown_rx.clone()));
    let whip_task = tokio::spawn(whip.run(shutdown_rx.clone()));
    let router = rill_ingest::http::router(node.clone()).merge(whip_handle.router());
    let mut http_shutdown = shutdown_rx.clone();
    let http_task = tokio::spawn(async move {
        let _ = axum::serve(
            http,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_shutdown.wait_for(|v| *v).await;
        })
        .await;
    });
    println!("rill-ingest listening on rtmp://{rtmp_addr} http://{http_addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutting down: finalising every stream");
    let _ = shutdown_tx.send(true);
    let _ = rtmp_task.await;
    let _ = whip_task.await;
    node.shutdown(Duration::from_secs(20)).await;
    let _ = http_task.await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
