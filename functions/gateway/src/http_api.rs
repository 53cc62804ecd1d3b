//! The client-facing HTTP server: API routes to functions, the HLS CDN stand-in, the web
//! app's static files and the local debug endpoints.
//!
//! Precedence, first match wins: CORS preflight (answered here, as API Gateway's CORS
//! configuration does, for any path) → `/_gateway/*` → `/hls/*` → `/ws` (when the
//! template has a WebSocket API) → `/@connections/{id}` (also under a stage prefix,
//! `/live/@connections/{id}`) → `POST /2015-03-31/functions/{name}/invocations` (Lambda's
//! Invoke API, [`crate::invoke_api`]) → template routes → static files. Unmatched `/api/*` paths
//! and non-GET requests get a JSON 404 rather than the web app, so API clients never
//! parse HTML.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State,
};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH,
    IF_NONE_MATCH, LINK, LOCATION, RETRY_AFTER, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tracing::{debug, error, info, warn};

use crate::event::{self, EventInput, FunctionResponse};
use crate::event_source::EventSources;
use crate::pool::{InvokeError, Outcome, Pool};
use crate::routes::{Lookup, Router as RouteTable};
use crate::websocket::Hub;
use crate::{invoke_api, management, scheduler_api};

/// API Gateway HTTP API's payload limit.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

#[derive(Debug)]
pub struct AppState {
    pub routes: RouteTable,
    pub pool: Arc<Pool>,
    pub static_dir: PathBuf,
    /// S3 access for `/hls/*`.
    pub media: rill_aws::objects::MediaObjects,
    /// The port clients reach, for `x-forwarded-port`.
    pub local_port: u16,
    /// The WebSocket API, when the template has one.
    pub websocket: Option<Arc<Hub>>,
    /// DynamoDB stream event source mappings, for the stats.
    pub event_sources: Arc<EventSources>,
    /// How `/hls/members/*` is guarded.
    pub media_access: MediaAccess,
    /// EventBridge Scheduler's one-time schedules, fired by this gateway.
    pub schedules: Arc<crate::scheduler_api::Schedules>,
}

/// The CloudFront trusted-key-group check of `members/*`, done locally: a signed grant
/// (query parameters or cookies) for the requested URL, unexpired.
#[derive(Debug, Clone)]
pub struct MediaAccess {
    pub verifier: rill_aws::media_signing::MediaVerifier,
    /// The public base the functions sign for (`HLS_BASE_URL`).
    pub hls_base: String,
}

impl MediaAccess {
    fn check(
        &self,
        key: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), rill_aws::media_signing::Refusal> {
        use rill_aws::media_signing::Refusal;
        let mut values = std::collections::HashMap::new();
        for pair in query.unwrap_or_default().split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && matches!(k, "Policy" | "Signature" | "Key-Pair-Id")
            {
                values.insert(k.to_owned(), v.to_owned());
            }
        }
        if values.is_empty() {
            for header in headers.get_all(axum::http::header::COOKIE) {
                for part in header.to_str().unwrap_or_default().split(';') {
                    if let Some((k, v)) = part.trim().split_once('=')
                        && let Some(k) = k.strip_prefix("CloudFront-")
                        && matches!(k, "Policy" | "Signature" | "Key-Pair-Id")
                    {
                        values.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
        }
        let get = |k: &str| values.get(k).map(String::as_str).ok_or(Refusal::Missing);
        let url = format!("{}/{key}", self.hls_base.trim_end_matches('/'));
        self.verifier.verify(
            get("Policy")?,
            get("Signature")?,
            get("Key-Pair-Id")?,
            &url,
            chrono::Utc::now().timestamp(),
        )
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    let connection = get(management::get_connection)
        .post(management::post_to_connection)
        .delete(management::delete_connection);
    let mut router = Router::new()
        .route("/_gateway/stats", get(stats))
        .route("/_gateway/reset", post(reset))
        .route("/hls/{*key}", get(hls))
        .route("/@connections/{id}", connection.clone())
        .route("/{stage}/@connections/{id}", connection)
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke_api::invoke),
        )
        .route(
            "/schedules/{name}",
            post(scheduler_api::create)
                .put(scheduler_api::update)
                .delete(scheduler_api::delete)
                .get(scheduler_api::get),
        );
    if state.websocket.is_some() {
        router = router.route("/ws", get(websocket));
    }
    router
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(cors())
        .with_state(state)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, IF_MATCH])
        // As infra/template.yaml's CorsConfiguration: what WHIP clients read from the
        // whip-router's answers.
        .expose_headers([
            LOCATION,
            LINK,
            ETAG,
            HeaderName::from_static("accept-patch"),
            RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(600))
}

/// `{"error":{"code","message"}}`, the shape every Rill error has.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The pool's per-function stats, plus `websocket` and `event_source_mappings`.
async fn stats(State(app): State<Arc<AppState>>) -> Response {
    let mut body = serde_json::to_value(app.pool.stats()).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        if let Some(hub) = &app.websocket {
            obj.insert(
                "websocket".into(),
                serde_json::to_value(hub.stats()).unwrap_or_default(),
            );
        }
        obj.insert(
            "event_source_mappings".into(),
            serde_json::to_value(app.event_sources.stats()).unwrap_or_default(),
        );
    }
    axum::Json(body).into_response()
}

/// `GET /ws`: `$connect`, then the upgrade (see [`crate::websocket`]).
async fn websocket(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let Some(hub) = &app.websocket else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no WebSocket API");
    };
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return error_response(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                &format!("this is a WebSocket endpoint: {}", rejection.body_text()),
            );
        }
    };
    hub.handle_upgrade(upgrade, &parts.headers, &parts.uri, source_ip)
        .await
}

async fn reset(State(app): State<Arc<AppState>>) -> Response {
    let killed = app.pool.reset().await;
    info!(killed, "function instances reset");
    axum::Json(json!({"killed": killed})).into_response()
}

async fn dispatch(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match app.routes.lookup(req.method().as_str(), &path) {
        Lookup::Found(route) => invoke(&app, route, req).await,
        // API Gateway answers a known path with an unknown method as not found too.
        Lookup::MethodMismatch { allowed } => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "no route for {} {path} (this path accepts {})",
                req.method(),
                allowed.join(", ")
            ),
        ),
        Lookup::NotFound
            if (req.method() == Method::GET || req.method() == Method::HEAD)
                && path != "/api"
                && !path.starts_with("/api/") =>
        {
            serve_static(&app, req).await
        }
        Lookup::NotFound => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {} {path}", req.method()),
        ),
    }
}

async fn invoke(app: &AppState, route: crate::routes::RouteMatch, req: Request) -> Response {
    let started = Instant::now();
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    let method = req.method().clone();
    let uri = req.uri().clone();
    let version = req.version();
    let headers = req.headers().clone();
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body exceeds 10 MiB",
        )
    };
    // Refuse a declared oversize body before reading any of it.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY as u64) {
        return too_large();
    }
    let body = match Bytes::from_request(req, &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large();
        }
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &rejection.body_text(),
            );
        }
    };
    let Some(pool) = app.pool.function(&route.function) else {
        // The route table and the pool come from the same template.
        error!(function = %route.function, "route points at an unknown function");
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        );
    };

    let request_id = ulid::Ulid::new().to_string();
    let event = event::build_event(&EventInput {
        method: &method,
        uri: &uri,
        version,
        headers: &headers,
        body: &body,
        source_ip,
        local_port: app.local_port,
        route: &route,
        request_id: &request_id,
        now: chrono::Utc::now(),
    });
    let event = match serde_json::to_vec(&event) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            error!(error = %e, "cannot serialise event");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
        }
    };

    // A task of its own: if the client goes away, the invocation still runs to its end
    // (as on Lambda) and its instance goes back to the pool instead of leaking as busy.
    let pool = pool.clone();
    let mut response = match tokio::spawn(async move { pool.invoke(event).await }).await {
        Ok(Ok(outcome)) => outcome_response(&route.function, outcome),
        Ok(Err(e)) => invoke_error_response(&route.function, &e),
        Err(join) => {
            error!(function = %route.function, error = %join, "invocation task failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    info!(
        method = %method,
        path = %uri.path(),
        function = %route.function,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis(),
        "api request"
    );
    response
}

fn outcome_response(function: &str, outcome: Outcome) -> Response {
    match parse_outcome(function, outcome) {
        Ok(response) => into_http(response),
        Err(response) => *response,
    }
}

/// A function's answer as a [`FunctionResponse`], or the error response the client gets
/// for a function error or an invalid answer.
pub(crate) fn parse_outcome(
    function: &str,
    outcome: Outcome,
) -> Result<FunctionResponse, Box<Response>> {
    let parsed = match outcome {
        Outcome::Response(payload) => event::parse_response(&payload),
        Outcome::Streamed { prelude, body } => {
            serde_json::from_slice::<serde_json::Value>(&prelude)
                .map_err(|e| format!("streaming prelude is not JSON: {e}"))
                .and_then(|v| match v {
                    serde_json::Value::Object(obj) => event::parse_metadata(&obj, body),
                    _ => Err("streaming prelude is not a JSON object".into()),
                })
        }
        Outcome::Error { error_type, .. } => {
            // Already logged with the function's message; the client learns nothing more.
            debug!(function, %error_type, "answering function error");
            return Err(Box::new(error_response(
                StatusCode::BAD_GATEWAY,
                "function_error",
                "the function failed to handle the request",
            )));
        }
    };
    parsed.map_err(|problem| {
        warn!(function, %problem, "invalid function response");
        Box::new(error_response(
            StatusCode::BAD_GATEWAY,
            "invalid_function_response",
            "the function returned an invalid response",
        ))
    })
}

pub(crate) fn into_http(response: FunctionResponse) -> Response {
    let FunctionResponse {
        status,
        mut headers,
        body,
    } = response;
    // Framing is ours to decide, and with CORS configured API Gateway replaces whatever
    // CORS headers the integration returns.
    for name in [
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_ALLOW_METHODS,
        ACCESS_CONTROL_ALLOW_HEADERS,
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ACCESS_CONTROL_EXPOSE_HEADERS,
        ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(name);
    }
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

pub(crate) fn invoke_error_response(function: &str, e: &InvokeError) -> Response {
    let (status, code, message) = match e {
        InvokeError::Throttled(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "throttled",
            "too many concurrent requests for this function",
        ),
        InvokeError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "function_timeout",
            "the function did not answer in time",
        ),
        InvokeError::Crashed => (
            StatusCode::BAD_GATEWAY,
            "function_crashed",
            "the function exited while handling the request",
        ),
        InvokeError::InitFailed(_) => (
            StatusCode::BAD_GATEWAY,
            "function_init_failed",
            "the function failed to initialise",
        ),
        InvokeError::SpawnFailed(_) => (
            StatusCode::BAD_GATEWAY,
            "function_unavailable",
            "the function could not be started",
        ),
        InvokeError::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the gateway is shutting down",
        ),
    };
    warn!(function, error = %e, status = status.as_u16(), "invocation failed");
    error_response(status, code, message)
}

async fn hls(
    State(app): State<Arc<AppState>>,
    Path(key): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if key.is_empty()
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return error_response(StatusCode::BAD_REQUEST, "bad_request", "invalid object key");
    }
    if key.starts_with("members/")
        && let Err(refusal) = app.media_access.check(&key, uri.query(), &headers)
    {
        // CloudFront answers a missing or bad grant with 403 too.
        return error_response(
            StatusCode::FORBIDDEN,
            "signed_access_required",
            &format!(
                "members-only media needs a grant from GET /api/streams/{{id}}/hls: {refusal}"
            ),
        );
    }
    let media = &app.media;
    match media.get(&key).await {
        Ok(Some(object)) => {
            let etag = object
                .etag
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok());
            let mut out = if etag.is_some() && headers.get(IF_NONE_MATCH) == etag.as_ref() {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                Response::new(Body::from(object.body))
            };
            let content_type = object
                .content_type
                .filter(|t| !t.is_empty() && t != "binary/octet-stream")
                .unwrap_or_else(|| guess_media_type(&key).to_owned());
            let h = out.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                h.insert(CONTENT_TYPE, v);
            }
            if let Some(v) = object
                .cache_control
                .and_then(|c| HeaderValue::from_str(&c).ok())
            {
                h.insert(CACHE_CONTROL, v);
            }
            if let Some(v) = etag {
                h.insert(ETAG, v);
            }
            out
        }
        Ok(None) => error_response(StatusCode::NOT_FOUND, "not_found", "no such object"),
        Err(e) => {
            error!(bucket = %media.bucket(), %key, error = %e, "cannot read object");
            error_response(
                StatusCode::BAD_GATEWAY,
                "storage_unavailable",
                "cannot read the object",
            )
        }
    }
}

/// Content types for what the packager writes, when the object carries none.
fn guess_media_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("ts") => "video/mp2t",
        Some("aac") => "audio/aac",
        Some("vtt") => "text/vtt",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

const NOT_BUILT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rill</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Rill</h1>
<p>The web app is not built yet. Build it (see the README), or point the gateway at it
with <code>--static-dir</code> / <code>STATIC_DIR</code>.</p>
<p>The API is up: try <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body></html>
"#;

async fn serve_static(app: &AppState, req: Request) -> Response {
    let dir = &app.static_dir;
    if !dir.is_dir() {
        return Html(NOT_BUILT_PAGE).into_response();
    }
    let path = req.uri().path().to_owned();
    let (parts, _) = req.into_parts();
    let retry = Request::from_parts(parts.clone(), Body::empty());
    let first = ServeDir::new(dir)
        .try_call(Request::from_parts(parts, Body::empty()))
        .await;
    let response = match first {
        Ok(r) => r.map(Body::new),
        Err(e) => return static_error(&path, &e),
    };
    // Client-side routes of the single-page app (no file extension) get index.html.
    let last = path.rsplit('/').next().unwrap_or_default();
    if response.status() != StatusCode::NOT_FOUND || last.contains('.') {
        return response;
    }
    match ServeFile::new(dir.join("index.html")).try_call(retry).await {
        Ok(r) => r.map(Body::new),
        Err(e) => static_error(&path, &e),
    }
}

fn static_error(path: &str, e: &std::io::Error) -> Response {
    error!(%path, error = %e, "cannot serve static file");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "cannot read the file",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_cover_what_the_packager_writes() {
        assert_eq!(
            guess_media_type("live/s/master.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(
            guess_media_type("live/s/720p/seg-1.M4S"),
            "video/iso.segment"
        );
        assert_eq!(guess_media_type("live/s/720p/init.mp4"), "video/mp4");
        assert_eq!(guess_media_type("live/s/thumb.jpg"), "image/jpeg");
        assert_eq!(guess_media_type("noext"), "application/octet-stream");
    }

    #[test]
    fn function_cors_and_framing_headers_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://x"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let out = into_http(FunctionResponse {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"hi"),
        });
        assert_eq!(out.status(), StatusCode::CREATED);
        assert!(out.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(out.headers().get(CONTENT_LENGTH).is_none());
        assert_eq!(out.headers()["x-kept"], "1");
    }
}
