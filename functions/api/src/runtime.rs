//! What every function binary's `main` calls.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};

use crate::{ApiError, App};

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

/// Builds the [`App`] once, then serves invocations with `handler` until the runtime stops.
/// Errors become responses here, so the Lambda invocation itself only fails on a bug in the
/// runtime plumbing.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Arc<App>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, ApiError>> + Send,
{
    init_tracing();
    let app = Arc::new(App::from_env().await);
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
pub async fn run_ws<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Arc<App>, crate::ws::WsRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<crate::ws::WsResponse, ApiError>> + Send,
{
    init_tracing();
    let app = Arc::new(App::from_env().await);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<crate::ws::WsRequest>| {
            let (app, handler) = (app.clone(), handler.clone());
            async move {
                Ok::<_, Infallible>(handler(app, event.payload).await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, code = e.code(), "socket handler failed");
                    let mut r = crate::ws::WsResponse::default();
                    r.status_code = i64::from(e.status());
                    r
                }))
            }
        },
    ))
    .await
}

/// Like [`run`], for the table's stream (`events-fanout`). A failure fails the batch so the
/// event source retries it.
pub async fn run_stream<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Arc<App>, aws_lambda_events::event::dynamodb::Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ApiError>> + Send,
{
    init_tracing();
    let app = Arc::new(App::from_env().await);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::dynamodb::Event>| {
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
