//! The runners behind every function's `main` (see [`crate::functions`]).
//!
//! Nothing public here is generic: a handler comes in as a boxed closure returning a boxed
//! future. `sam build` compiles and links each of the 40 binaries on its own, and a release build
//! shares no generic instantiation between crates, so anything generic a binary touches
//! (the Lambda runtime, hyper, event (de)serialisation, a future's drop glue) would be
//! compiled again for every function: ~14 s of each function's build on 2 cores. Built
//! once here, a binary's own crate is one call (~1 s). The cost is one boxed future per
//! invocation.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};

use crate::{ApiError, App};

/// A handler's future, boxed.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// An HTTP API route's handler (payload 2.0).
pub type HttpHandler =
    Box<dyn Fn(Arc<App>, Request) -> BoxFuture<Result<Response<Body>, ApiError>> + Send + Sync>;
/// A WebSocket route's handler.
pub type WsHandler = Box<
    dyn Fn(Arc<App>, crate::ws::WsRequest) -> BoxFuture<Result<crate::ws::WsResponse, ApiError>>
        + Send
        + Sync,
>;
/// The table stream's handler.
pub type StreamHandler = EventHandler<aws_lambda_events::event::dynamodb::Event, ()>;
/// A handler of events of type `E` answering `T` (the table stream, direct invocations).
pub type EventHandler<E, T> =
    Box<dyn Fn(Arc<App>, E) -> BoxFuture<Result<T, ApiError>> + Send + Sync>;

/// A function process's `main`: the multi-threaded Tokio runtime `#[tokio::main]` would
/// build, running `main` to its end.
pub fn block_on(
    main: Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>>>>,
) -> Result<(), lambda_runtime::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// Logs to stdout (CloudWatch on AWS, the gateway's log locally), level from `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .init();
}

/// A function invoked directly (the Lambda Invoke API) with a JSON payload.
pub type JsonHandler = EventHandler<serde_json::Value, serde_json::Value>;

/// Builds the [`App`] once, then serves invocations with `handler` until the runtime stops.
/// Errors become responses here, so the Lambda invocation itself only fails on a bug in the
/// runtime plumbing.
pub async fn run(handler: HttpHandler) -> Result<(), lambda_http::Error> {
    init_tracing();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_http::run(service_fn(move |req: Request| {
        let (app, handler) = (app.clone(), handler.clone());
        async move {
            Ok::<_, Infallible>(
                handler(app, req)
                    .await
                    .unwrap_or_else(ApiError::into_response),
            )
        }
    }))
    .await
}

/// Like [`run`], for WebSocket routes (`ApiGatewayWebsocketProxyRequest` events). A handler
/// error becomes a 500 answer (for `$connect`, a refused handshake) and a log line.
pub async fn run_ws(handler: WsHandler) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<crate::ws::WsRequest>| {
            let (app, handler) = (app.clone(), handler.clone());
            async move {
                let context = &event.payload.request_context;
                let sender = context
                    .connection_id
                    .clone()
                    .filter(|_| context.event_type.as_deref() == Some("MESSAGE"));
                match handler(app.clone(), event.payload).await {
                    Ok(r) => Ok::<_, Infallible>(r),
                    Err(e) => {
                        tracing::error!(error = %e, code = e.code(), "socket handler failed");
                        // A frame the handler could not answer (storage down, a bug) still
                        // gets an error frame on its socket: API Gateway itself would send
                        // nothing back for a failed route.
                        if let Some(connection_id) = sender {
                            crate::ws::tell_failure(&app, &connection_id, &e).await;
                        }
                        let mut r = crate::ws::WsResponse::default();
                        r.status_code = i64::from(e.status());
                        Ok(r)
                    }
                }
            }
        },
    ))
    .await
}

/// Like [`run`], for the table's stream (`events-fanout`). A failure fails the batch so the
/// event source retries it.
pub async fn run_stream(handler: StreamHandler) -> Result<(), lambda_runtime::Error> {
    run_events(handler).await
}

/// Like [`run`], for a function invoked directly with a JSON payload
/// (`events-fanout-shard`). A handler error fails the invocation.
pub async fn run_json(handler: JsonHandler) -> Result<(), lambda_runtime::Error> {
    run_events(handler).await
}

/// The runner of [`run_stream`] and [`run_json`]: events of type `E` in, `T` out, a handler
/// error fails the invocation. Generic, but instantiated only by those two, here, once.
async fn run_events<E, T>(handler: EventHandler<E, T>) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned + Send + 'static,
    T: serde::Serialize + Send + 'static,
{
    init_tracing();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<E>| {
            let (app, handler) = (app.clone(), handler.clone());
            async move {
                handler(app, event.payload)
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))
            }
        },
    ))
    .await
}
