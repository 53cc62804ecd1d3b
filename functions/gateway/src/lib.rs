//! rill-gateway: a local stand-in for AWS API Gateway (HTTP API payload v2.0, WebSocket
//! API, the `@connections` Management API) and Lambda (invocations, and DynamoDB stream
//! event source mappings), so the real function binaries of `rill-api` run unchanged on a
//! laptop.
//!
//! - [`template`]: functions, HTTP routes, WebSocket routes and stream triggers from
//!   `infra/template.yaml`, the single source of truth; the gateway has no route table of
//!   its own.
//! - [`routes`]: API Gateway route selection (literal > `{param}` > `{greedy+}`).
//! - [`event`]: the v2.0 request event and response parsing, as `lambda_http` expects them.
//! - [`pool`]: function instances (child processes), one invocation each at a time, warm
//!   reuse, per-function instance limit, timeouts and crash handling.
//! - [`runtime_api`]: the Lambda Runtime API each instance polls, one listener per instance.
//! - [`http_api`]: the client-facing server: API, `/hls/*` from S3 (CDN stand-in), the web
//!   app's static files, CORS, and the local debug endpoints.
//! - [`websocket`] and [`websocket_event`]: `/ws`, with the `$connect` route's Lambda
//!   REQUEST authorizer and `$connect` before the handshake, route selection on `action`,
//!   in-order invocations per connection, idle and age limits and `$disconnect` whatever
//!   ends the socket.
//! - [`management`]: `POST/GET/DELETE /@connections/{id}` for
//!   `aws-sdk-apigatewaymanagement`, with 410 `GoneException` for closed connections.
//! - [`scheduler_api`]: EventBridge Scheduler's one-time schedules, kept and fired here
//!   (reminders).
//! - [`invoke_api`]: Lambda's Invoke API for the template's functions (`Event` runs in
//!   the background, `RequestResponse` answers the result): sharded fan-out invokes
//!   `events-fanout-shard` through it.
//! - [`event_source`]: polls the table's DynamoDB stream (locally DynamoDB Local's, or
//!   moto's) and invokes the `Type: DynamoDB` functions with Lambda's batches, retries and
//!   ordering, passing each only the records its `FilterCriteria` ([`filter`]) lets through.
//!
//! Invariants:
//! - HTTP API events never carry `requestContext.authorizer`: functions verify Bearer
//!   tokens themselves, so no client input can become claims.
//! - WebSocket events carry `requestContext.authorizer` only from the answer of the
//!   template's `$connect` authorizer function (`principalId`, `integrationLatency`, its
//!   `context`), as API Gateway does; nothing a client sends becomes authorizer context,
//!   and a `$connect` without an authorizer gives events without the key. Authorizations
//!   the gateway cannot honour (`AWS_IAM`) refuse the template rather than admit
//!   everyone.
//! - It refuses to start unless every function of the template has an executable (the
//!   authorizer's included), and unless every WebSocket route of the template and its
//!   authorizer resolve to functions.
//! - It binds 127.0.0.1 only: `/_gateway/stats`, `/_gateway/reset` and `/@connections`
//!   are unauthenticated and must not be reachable from elsewhere.
//! - Functions get `WS_MANAGEMENT_ENDPOINT=http://127.0.0.1:<port>` and
//!   `HLS_BASE_URL=http://127.0.0.1:<port>/hls` unless the gateway's
//!   environment sets them, so `PostToConnection` and playback URLs reach this gateway even
//!   on a random port.
//! - On shutdown it closes the WebSockets (running `$disconnect`) and stops the stream
//!   pollers while the server still answers `@connections`, then stops accepting, lets
//!   in-flight requests finish for a grace period, then kills every function instance; no
//!   child outlives it (children also have `kill_on_drop`, and lose their Runtime API when
//!   the gateway dies).

pub mod config;
pub mod event;
pub mod event_source;
pub mod filter;
pub mod http_api;
pub mod invoke_api;
pub mod management;
pub mod pool;
pub mod routes;
pub mod runtime_api;
pub mod scheduler_api;
pub mod template;
pub mod websocket;
pub mod websocket_event;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

pub use config::Config;
pub use template::{FunctionSpec, HttpRoute, Template, load_functions, load_template};

/// How long in-flight requests may run after a shutdown signal before instances are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Routes(#[from] routes::RouteError),
    #[error(
        "no executable in {dir} for function(s): {}; build them first (cargo build -p rill-api) \
         or pass --functions-dir",
        missing.join(", ")
    )]
    MissingBinaries { dir: PathBuf, missing: Vec<String> },
    #[error("cannot create local resources: {0}")]
    InitResources(String),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Function names of the template with no executable in `dir`.
pub fn missing_binaries(functions: &[FunctionSpec], dir: &Path) -> Vec<String> {
    functions
        .iter()
        .filter(|f| !is_executable(&dir.join(&f.name)))
        .map(|f| f.name.clone())
        .collect()
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
    let template = load_template(&config.template)?;
    let functions = template.functions;
    let missing = missing_binaries(&functions, &config.functions_dir);
    if !missing.is_empty() {
        return Err(GatewayError::MissingBinaries {
            dir: config.functions_dir.clone(),
            missing,
        });
    }
    let route_table = routes::Router::new(
        functions
            .iter()
            .flat_map(|f| f.routes.iter().map(move |r| (f.name.as_str(), r))),
    )?;
    // Functions another function names in its environment (`!Ref XFunction` or
    // `!GetAtt XFunction.Arn`, which the template resolved to local names and ARNs): the
    // Lambda Invoke API, or one-time schedules the gateway fires.
    let invoked_directly: std::collections::BTreeSet<&str> = functions
        .iter()
        .flat_map(|f| f.environment.values())
        .filter_map(|v| {
            functions
                .iter()
                .find(|g| *v == g.name || *v == template::local_function_arn(&g.name))
        })
        .map(|g| g.name.as_str())
        .collect();
    for f in &functions {
        let on_websocket = template
            .websocket
            .as_ref()
            .is_some_and(|api| api.functions().any(|name| name == f.name));
        if f.routes.is_empty() && f.stream_sources.is_empty() && !on_websocket {
            if invoked_directly.contains(f.name.as_str()) {
                info!(function = %f.name, "function is invoked by other functions or their schedules");
            } else if f.other_events.is_empty() {
                warn!(function = %f.name, "function has no HTTP route, WebSocket route or stream trigger");
            } else {
                // e.g. ingest-prewarm on its EventBridge Scheduler schedule.
                info!(function = %f.name, events = ?f.other_events,
                    "function is triggered only by events the gateway does not serve");
            }
        }
    }

    let settings = rill_aws::AwsSettings::from_env();
    let sdk = rill_aws::sdk_config(&settings).await;
    let s3 = rill_aws::s3_client(&sdk);
    if config.init_resources {
        let db = rill_aws::dynamodb_client(&sdk);
        rill_aws::bootstrap::ensure_table(&db, &settings.table_name)
            .await
            .map_err(|e| GatewayError::InitResources(e.to_string()))?;
        rill_aws::bootstrap::ensure_bucket(&s3, &settings.bucket_name)
            .await
            .map_err(|e| GatewayError::InitResources(e.to_string()))?;
        info!(table = %settings.table_name, bucket = %settings.bucket_name, "local resources ready");
    }

    let listener = TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|source| GatewayError::Bind {
            port: config.port,
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| GatewayError::Bind {
            port: config.port,
            source,
        })?
        .port();

    // Members-only media: the functions sign grants with this key, `/hls` checks them as
    // CloudFront does. A key from the environment (HLS_KEY_PAIR_ID + HLS_SIGNING_KEY) is
    // used as given; otherwise each start makes its own.
    let (signer, generated_key) = media_signer_from_env();
    let hls_base =
        std::env::var("HLS_BASE_URL").unwrap_or_else(|_| format!("http://127.0.0.1:{port}/hls"));
    // This gateway is also the functions' Management API, Lambda Invoke API and CDN
    // stand-in.
    let mut default_env = BTreeMap::from([
        (
            "AWS_ENDPOINT_URL_LAMBDA".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            "WS_MANAGEMENT_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            "HLS_BASE_URL".to_owned(),
            format!("http://127.0.0.1:{port}/hls"),
        ),
        // Webhook receivers on this machine (tests, a developer's listener) over http;
        // private ranges stay refused. On AWS the variable is unset: public https only.
        ("WEBHOOK_ALLOW_LOCAL".to_owned(), "true".to_owned()),
        // One-time schedules (reminders) are kept and fired by this gateway.
        (
            "AWS_ENDPOINT_URL_SCHEDULER".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
    ]);
    if let Some(key) = generated_key {
        default_env.insert("HLS_KEY_PAIR_ID".to_owned(), LOCAL_KEY_PAIR_ID.to_owned());
        default_env.insert("HLS_SIGNING_KEY".to_owned(), key);
    }
    let pool = Arc::new(pool::Pool::new(
        &functions,
        &config.functions_dir,
        config.max_instances,
        default_env,
    ));
    let websocket_routes = template
        .websocket
        .as_ref()
        .map_or(0, |api| api.routes.len());
    let hub = template.websocket.map(|api| {
        Arc::new(websocket::Hub::new(
            api,
            pool.clone(),
            config.websocket,
            port,
        ))
    });
    let event_sources = Arc::new(if config.stream_poller {
        event_source::EventSources::start(
            &functions,
            pool.clone(),
            &sdk,
            event_source::StreamSettings {
                table_name: settings.table_name.clone(),
                region: settings.region.clone(),
            },
        )
    } else {
        event_source::EventSources::disabled(&functions)
    });
    let state = Arc::new(http_api::AppState {
        routes: route_table,
        pool: pool.clone(),
        static_dir: config.static_dir.clone(),
        media: rill_aws::objects::MediaObjects::new(s3, settings.bucket_name.clone()),
        local_port: port,
        websocket: hub.clone(),
        event_sources: event_sources.clone(),
        schedules: Arc::default(),
        media_access: http_api::MediaAccess {
            verifier: signer.verifier(),
            hls_base,
        },
    });
    let app = http_api::app(state).into_make_service_with_connect_info::<SocketAddr>();

    info!(
        port,
        functions = functions.len(),
        functions_dir = %config.functions_dir.display(),
        template = %config.template.display(),
        static_dir = %config.static_dir.display(),
        max_instances = config.max_instances,
        websocket_routes,
        stream_mappings = event_sources.stats().len(),
        stream_poller = config.stream_poller,
        "gateway started"
    );
    // The test harness reads this exact line to learn the port.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "rill-gateway listening on http://127.0.0.1:{port}");
        let _ = out.flush();
    }

    let stop = Arc::new(tokio::sync::Notify::new());
    let stop_signal = stop.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop_signal.notified().await })
            .await
    });

    let stop_realtime = || async {
        let hub = hub.clone();
        let ws = async move {
            if let Some(hub) = hub {
                hub.shutdown(SHUTDOWN_GRACE).await;
            }
        };
        tokio::join!(ws, event_sources.shutdown(SHUTDOWN_GRACE));
    };

    tokio::select! {
        result = &mut server => {
            stop_realtime().await;
            pool.shutdown().await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(GatewayError::Serve(e)),
                Err(join) => Err(GatewayError::Serve(std::io::Error::other(join))),
            };
        }
        () = shutdown => {}
    }

    // WebSockets ($disconnect) and stream batches first, while the server still answers
    // the @connections calls those functions make.
    info!("shutting down: closing WebSockets and stream pollers");
    stop_realtime().await;
    info!("shutting down: no new connections");
    stop.notify_one();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
        .await
        .is_err()
    {
        warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "requests still running; stopping functions"
        );
        pool.shutdown().await;
        let _ = server.await;
    } else {
        pool.shutdown().await;
    }
    info!("gateway stopped");
    Ok(())
}

/// The key pair id of the key a gateway makes for itself.
pub const LOCAL_KEY_PAIR_ID: &str = "rill-local";

/// The members-only media signer: from `HLS_KEY_PAIR_ID` + `HLS_SIGNING_KEY` when both are
/// set and usable, else a new key (returned as base64 PKCS#8 for the functions).
fn media_signer_from_env() -> (rill_aws::media_signing::MediaSigner, Option<String>) {
    use rill_aws::media_signing::MediaSigner;
    let id = std::env::var("HLS_KEY_PAIR_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let key = std::env::var("HLS_SIGNING_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    if let (Some(id), Some(key)) = (id, key) {
        match MediaSigner::from_base64_pkcs8(id, &key) {
            Ok(signer) => return (signer, None),
            Err(e) => {
                warn!(error = %e, "HLS_SIGNING_KEY unusable; signing members-only media with a key of this start")
            }
        }
    }
    let (signer, key) = MediaSigner::generate(LOCAL_KEY_PAIR_ID);
    (signer, Some(key))
}
