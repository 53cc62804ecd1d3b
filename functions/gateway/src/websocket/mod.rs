//! The WebSocket API at `/ws`: API Gateway's connection handling around the template's
//! `$connect`, `$disconnect`, `$default` and action routes.
//!
//! Life of a connection, as on AWS:
//! 1. `GET /ws?...` with an upgrade: `$connect` runs **before** the handshake completes.
//!    When the template gives `$connect` a Lambda REQUEST authorizer (`authorizer.rs`),
//!    it decides first: a handshake missing an identity source is refused (401) without
//!    invoking it; then its answer admits the handshake or refuses it (401, 403, or 500
//!    for a broken authorizer), and `$connect` never runs for a refused one. An admitted
//!    connection keeps the answer's context: every event of it (`$connect`, messages,
//!    `$disconnect`) carries it as `requestContext.authorizer`, so functions trust what
//!    the authorizer decided without re-reading anything the client sent.
//!    A 2xx answer of `$connect` completes the handshake; any other status refuses it with
//!    that status and body, and a failed invocation refuses it with the gateway's
//!    502/503/504 (no upgrade either way). A client that leaves while the authorizer and an
//!    accepted `$connect` run still gets its `$disconnect`, with the authorizer's context
//!    (the function may have registered it already).
//! 2. The connection is registered as soon as `$connect` accepts it, before the 101 goes
//!    out, so a `PostToConnection` right after `$connect` is queued, not lost. During
//!    `$connect` itself the id is unknown (410), as on AWS.
//! 3. Each data frame is routed on `$request.body.<field>` (else `$default`) and invoked
//!    with a `MESSAGE` event. One connection's frames are invoked in order, one at a time
//!    (a per-connection task); different connections run concurrently through the pool.
//!    The function's response is not sent to the client (no route responses): functions
//!    answer through `PostToConnection`. A failed invocation gets AWS's
//!    `{"message":"Internal server error",...}` frame.
//! 4. Frames over 32 KiB (API Gateway's frame limit) invoke nothing: the client gets
//!    Rill's error frame `frame_too_large` and the connection stays open. Messages over
//!    1 MiB close the connection (1009): that is a client bug or abuse, not a chat message.
//! 5. Outbound frames (`PostToConnection`, error frames) go through a bounded queue to a
//!    writer task, so a slow client delays only itself; one whose queue overflows is
//!    dropped (close without handshake) and its posts answer 410.
//! 6. However the socket ends (client close, idle timeout, maximum age, `DELETE
//!    /@connections/{id}`, queue overflow, gateway shutdown), `$disconnect` runs exactly
//!    once, after the connection's queued messages have been invoked.
//!
//! Only data frames count as activity for the idle timeout; pings and pongs do not (AWS
//! behaves the same, so a client must send a data frame, e.g. `{"action":"ping"}`, to stay
//! connected).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{HOST, SEC_WEBSOCKET_PROTOCOL, USER_AGENT};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod authorizer;
mod connection;

use connection::CloseKind;
pub use connection::{CloseCause, Connection, PostError};

use crate::http_api::{self, error_response};
use crate::pool::{InvokeError, Outcome, Pool};
use crate::template::WebSocketApi;
use crate::websocket_event::{self as wse, ConnectionContext, Frame};

/// API Gateway's WebSocket frame size limit.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// Larger messages close the connection instead of earning an error frame.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Outbound frames queued for one client before it counts as too slow and is dropped.
pub const OUTBOUND_QUEUE: usize = 1024;
/// Frames received but not yet invoked, per connection; a full queue stops reading
/// from that client (TCP back-pressure), as an overloaded integration would.
const INBOUND_QUEUE: usize = 64;
/// How long a graceful close may spend sending the frames queued before it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the client's close frame after ours.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Connection limits, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// No data frame from the client for this long closes the connection (AWS: 10 min).
    pub idle_timeout: Duration,
    /// Connections older than this are closed (AWS: 2 h).
    pub max_age: Duration,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_age: Duration::from_secs(7200),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    connect_refused: AtomicU64,
    authorizer_refused: AtomicU64,
    messages: AtomicU64,
    frames_too_large: AtomicU64,
    invocation_failures: AtomicU64,
    disconnects: AtomicU64,
    posts: AtomicU64,
    posts_gone: AtomicU64,
    frames_sent: AtomicU64,
    slow_clients_closed: AtomicU64,
    idle_timeouts: AtomicU64,
    max_age_closes: AtomicU64,
    deleted: AtomicU64,
}

/// `websocket` in `GET /_gateway/stats`.
#[derive(Debug, Serialize)]
pub struct WebSocketStats {
    pub open_connections: usize,
    /// Connections `$connect` accepted, since start.
    pub connections: u64,
    /// Handshakes refused, by the authorizer or by `$connect` (non-2xx or failed
    /// invocation).
    pub connect_refused: u64,
    /// Of those, the ones the `$connect` authorizer refused (401, 403, 500), missing
    /// identity sources included.
    pub authorizer_refused: u64,
    /// Data frames received from clients.
    pub messages: u64,
    pub frames_too_large: u64,
    /// Route invocations that failed or answered non-2xx.
    pub invocation_failures: u64,
    pub disconnects: u64,
    /// `PostToConnection` calls queued for a live connection.
    pub posts: u64,
    /// `PostToConnection` calls answered 410.
    pub posts_gone: u64,
    /// Frames written to clients.
    pub frames_sent: u64,
    pub slow_clients_closed: u64,
    pub idle_timeouts: u64,
    pub max_age_closes: u64,
    /// Connections closed by `DELETE /@connections/{id}`.
    pub deleted: u64,
}

/// What the `$connect` task reports to the handshake.
enum Handshake {
    /// Accepted: the connection's context (with the authorizer's answer) and the
    /// subprotocol `$connect` chose.
    Accepted {
        ctx: ConnectionContext,
        protocol: Option<HeaderValue>,
    },
    /// Refused by the authorizer or `$connect`: the answer to the client.
    Refused(Box<Response>),
}

/// All WebSocket connections of the gateway.
#[derive(Debug)]
pub struct Hub {
    api: WebSocketApi,
    pool: Arc<Pool>,
    settings: WebSocketSettings,
    local_port: u16,
    connections: RwLock<HashMap<String, Arc<Connection>>>,
    /// Connections whose `$disconnect` has not finished yet.
    live: watch::Sender<usize>,
    shutting_down: AtomicBool,
    counters: Counters,
}

impl Hub {
    pub fn new(
        api: WebSocketApi,
        pool: Arc<Pool>,
        settings: WebSocketSettings,
        local_port: u16,
    ) -> Self {
        Self {
            api,
            pool,
            settings,
            local_port,
            connections: RwLock::new(HashMap::new()),
            live: watch::Sender::new(0),
            shutting_down: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// The open connection with this id.
    pub fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// `PostToConnection`.
    pub fn post(&self, id: &str, data: Bytes) -> Result<(), PostError> {
        let result = match self.connection(id) {
            Some(conn) => conn.post(data),
            None => Err(PostError::Gone),
        };
        let counter = match result {
            Ok(()) => &self.counters.posts,
            Err(PostError::Gone) => &self.counters.posts_gone,
            Err(PostError::Overflow) => {
                self.counters.posts_gone.fetch_add(1, Ordering::Relaxed);
                &self.counters.slow_clients_closed
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// `DeleteConnection`: closes the socket; `$disconnect` follows.
    pub fn delete(&self, id: &str) -> Result<(), PostError> {
        let conn = self.connection(id).ok_or(PostError::Gone)?;
        if conn.request_close(CloseCause::deleted()) {
            self.counters.deleted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            Err(PostError::Gone)
        }
    }

    pub fn stats(&self) -> WebSocketStats {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebSocketStats {
            open_connections: self
                .connections
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            connections: n(&c.connections),
            connect_refused: n(&c.connect_refused),
            authorizer_refused: n(&c.authorizer_refused),
            messages: n(&c.messages),
            frames_too_large: n(&c.frames_too_large),
            invocation_failures: n(&c.invocation_failures),
            disconnects: n(&c.disconnects),
            posts: n(&c.posts),
            posts_gone: n(&c.posts_gone),
            frames_sent: n(&c.frames_sent),
            slow_clients_closed: n(&c.slow_clients_closed),
            idle_timeouts: n(&c.idle_timeouts),
            max_age_closes: n(&c.max_age_closes),
            deleted: n(&c.deleted),
        }
    }

    /// Closes every connection (1001) and waits, up to `grace`, until their `$disconnect`
    /// invocations are done. New handshakes are refused from now on.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let open: Vec<Arc<Connection>> = self
            .connections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for conn in &open {
            conn.request_close(CloseCause::shutdown());
        }
        let mut live = self.live.subscribe();
        if tokio::time::timeout(grace, live.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            warn!(
                remaining = *live.borrow(),
                "WebSocket connections still closing; giving up on their $disconnect"
            );
        } else if !open.is_empty() {
            info!(
                closed = open.len(),
                "WebSocket connections closed for shutdown"
            );
        }
    }

    /// `GET /ws`: `$connect`, then the upgrade.
    pub async fn handle_upgrade(
        self: &Arc<Self>,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        uri: &Uri,
        source_ip: IpAddr,
    ) -> Response {
        if self.shutting_down.load(Ordering::Relaxed) {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the gateway is shutting down",
            );
        }
        let now = Utc::now();
        let header = |name| {
            headers
                .get(name)
                .map(|v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let ctx = ConnectionContext {
            connection_id: wse::new_id(),
            connected_at: now,
            source_ip: source_ip.to_string(),
            user_agent: header(USER_AGENT),
            domain_name: header(HOST).unwrap_or_else(|| format!("127.0.0.1:{}", self.local_port)),
            stage: self.api.stage.clone(),
            authorizer: None,
        };

        let (ctx, protocol) = match self.api.function_for("$connect") {
            None => (ctx, None),
            Some(function) => {
                let raw_query = uri.query().unwrap_or("");
                if let Some(authorizer) = &self.api.connect_authorizer
                    && let Some(missing) = authorizer::missing_identity(
                        &authorizer.identity_sources,
                        headers,
                        raw_query,
                    )
                {
                    // As API Gateway: no identity, no authorizer invocation.
                    self.count_refusal(true);
                    info!(connection_id = %ctx.connection_id, authorizer = %authorizer.logical_id,
                          identity_source = %missing, "handshake without its identity source refused (401)");
                    return authorizer::refusal(StatusCode::UNAUTHORIZED);
                }
                // The authorizer and `$connect` run in a task of their own and report back:
                // if the client leaves while they run (this handler is dropped), an
                // accepted `$connect` has already registered the viewer, so the connection
                // is opened and closed at once and its `$disconnect` runs (with the
                // authorizer's context), as API Gateway ends a connection whose client
                // vanished. Without this the viewer would stay counted until a fan-out
                // pruned it.
                let (report, reported) = tokio::sync::oneshot::channel();
                let hub = self.clone();
                let (function, headers, raw_query) =
                    (function.to_owned(), headers.clone(), raw_query.to_owned());
                tokio::spawn(async move {
                    let handshake = hub.connect(&function, ctx, &headers, &raw_query, now).await;
                    if let Err(Handshake::Accepted { ctx, .. }) = report.send(handshake) {
                        hub.abandoned(ctx).await;
                    }
                });
                match reported.await {
                    Ok(Handshake::Accepted { ctx, protocol }) => (ctx, protocol),
                    Ok(Handshake::Refused(response)) => return *response,
                    Err(_) => {
                        return error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "the $connect task ended without an answer",
                        );
                    }
                }
            }
        };

        let (conn, outbound_rx) = self.register(ctx);
        let mut upgrade = upgrade
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES);
        // Whatever `$connect` chose is echoed, as API Gateway does; a client that asked for
        // subprotocols and gets none fails the handshake on its side.
        if let Some(protocol) = protocol {
            upgrade.set_selected_protocol(protocol);
        }
        let hub = self.clone();
        let failed_hub = self.clone();
        let failed_conn = conn.clone();
        upgrade
            .on_failed_upgrade(move |error| {
                warn!(connection_id = %failed_conn.id(), %error, "WebSocket upgrade failed");
                failed_conn.request_close(CloseCause::new(
                    CloseKind::Abrupt,
                    1006,
                    "Handshake failed",
                ));
                tokio::spawn(async move { failed_hub.finish(&failed_conn).await });
            })
            .on_upgrade(move |socket| async move {
                hub.run_connection(conn, socket, outbound_rx).await;
            })
    }

    /// The authorizer, if `$connect` has one, then `$connect`: what the handshake gets.
    /// The authorizer's event and `$connect`'s share the request id and time, as on AWS
    /// (one request); `$connect` already carries the authorizer's context.
    async fn connect(
        &self,
        function: &str,
        mut ctx: ConnectionContext,
        headers: &HeaderMap,
        raw_query: &str,
        now: DateTime<Utc>,
    ) -> Handshake {
        let request_id = wse::new_id();
        if let Some(authorizer) = &self.api.connect_authorizer {
            let event =
                wse::authorizer_event(&ctx, headers, raw_query, self.local_port, &request_id, now);
            match self.authorize(authorizer, &event, &ctx.connection_id).await {
                Ok(answer) => ctx.authorizer = Some(answer),
                Err(refusal) => {
                    self.count_refusal(true);
                    return Handshake::Refused(refusal);
                }
            }
        }
        let event = wse::connect_event(&ctx, headers, raw_query, self.local_port, &request_id, now);
        let parsed = match self.invoke(function, &event).await {
            Ok(outcome) => http_api::parse_outcome(function, outcome),
            Err(e) => Err(Box::new(http_api::invoke_error_response(function, &e))),
        };
        match parsed {
            Ok(response) if response.status.is_success() => Handshake::Accepted {
                protocol: response.headers.get(SEC_WEBSOCKET_PROTOCOL).cloned(),
                ctx,
            },
            Ok(response) => {
                self.count_refusal(false);
                info!(connection_id = %ctx.connection_id, status = response.status.as_u16(),
                      "$connect refused the connection");
                Handshake::Refused(Box::new(http_api::into_http(response)))
            }
            Err(response) => {
                self.count_refusal(false);
                Handshake::Refused(response)
            }
        }
    }

    /// Counts a refused handshake (counted where it is decided, so a client that left
    /// meanwhile is counted too).
    fn count_refusal(&self, by_authorizer: bool) {
        self.counters
            .connect_refused
            .fetch_add(1, Ordering::Relaxed);
        if by_authorizer {
            self.counters
                .authorizer_refused
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection whose client left during an accepted `$connect`: opened and closed at
    /// once, abruptly, so its `$disconnect` runs like any other.
    async fn abandoned(self: &Arc<Self>, ctx: ConnectionContext) {
        info!(connection_id = %ctx.connection_id, "client left during $connect; disconnecting");
        let (conn, _outbound) = self.register(ctx);
        conn.request_close(CloseCause::abnormal());
        self.finish(&conn).await;
    }

    fn register(&self, ctx: ConnectionContext) -> (Arc<Connection>, mpsc::Receiver<Message>) {
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let conn = Arc::new(Connection {
            last_active_ms: AtomicI64::new(ctx.connected_at.timestamp_millis()),
            ctx,
            outbound,
            close: watch::Sender::new(None),
        });
        self.live.send_modify(|n| *n += 1);
        self.connections
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(conn.id().to_owned(), conn.clone());
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        if self.shutting_down.load(Ordering::Relaxed) {
            // Shutdown began during $connect: close right after the handshake.
            conn.request_close(CloseCause::shutdown());
        }
        info!(connection_id = %conn.id(), source_ip = %conn.source_ip(), "WebSocket connected");
        (conn, outbound_rx)
    }

    fn unregister(&self, id: &str) {
        self.connections
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    async fn run_connection(
        self: Arc<Self>,
        conn: Arc<Connection>,
        socket: WebSocket,
        outbound_rx: mpsc::Receiver<Message>,
    ) {
        let (sink, mut stream) = socket.split();
        let writer = tokio::spawn(write_loop(
            sink,
            outbound_rx,
            conn.close.subscribe(),
            self.clone(),
        ));
        // With the moment each frame arrived: API Gateway's `requestTimeEpoch` is when the
        // message was received, not when its function got to run.
        let (inbound_tx, inbound_rx) = mpsc::channel::<(Frame, DateTime<Utc>)>(INBOUND_QUEUE);
        let invoker = tokio::spawn(self.clone().invoke_loop(conn.clone(), inbound_rx));

        let mut close_rx = conn.close.subscribe();
        let max_age_at = Instant::now() + self.settings.max_age;
        let idle = tokio::time::sleep(self.settings.idle_timeout);
        tokio::pin!(idle);
        let cause = loop {
            let frame = tokio::select! {
                biased;
                _ = close_rx.wait_for(Option::is_some) => break None,
                () = tokio::time::sleep_until(max_age_at) => {
                    self.counters.max_age_closes.fetch_add(1, Ordering::Relaxed);
                    break Some(CloseCause::new(CloseKind::Graceful, 1001, "Going away: maximum connection age reached"));
                }
                () = &mut idle => {
                    self.counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                    break Some(CloseCause::new(CloseKind::Graceful, 1001, "Going away: idle timeout"));
                }
                message = stream.next() => match message {
                    None => break Some(CloseCause::abnormal()),
                    Some(Err(e)) => break Some(read_error_cause(&e)),
                    Some(Ok(Message::Close(frame))) => break Some(CloseCause::by_client(frame)),
                    // Control frames are not activity (as on AWS).
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
                    Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
                },
            };
            let now = Utc::now();
            idle.as_mut()
                .reset(Instant::now() + self.settings.idle_timeout);
            conn.touch(now);
            self.counters.messages.fetch_add(1, Ordering::Relaxed);
            if frame.len() > MAX_FRAME_BYTES {
                self.counters
                    .frames_too_large
                    .fetch_add(1, Ordering::Relaxed);
                debug!(connection_id = %conn.id(), bytes = frame.len(), "frame too large");
                conn.send_frame(wse::error_frame(
                    "frame_too_large",
                    "frames are limited to 32 KiB",
                    now,
                ));
                continue;
            }
            tokio::select! {
                biased;
                _ = close_rx.wait_for(Option::is_some) => break None,
                sent = inbound_tx.send((frame, now)) => if sent.is_err() { break None },
            }
        };
        if let Some(cause) = cause {
            conn.request_close(cause);
        }
        let cause = conn.cause().unwrap_or_else(CloseCause::abnormal);

        // Posts from now on answer 410; frames already received are still invoked.
        self.unregister(conn.id());
        drop(inbound_tx);
        let _ = writer.await;
        if cause.kind == CloseKind::Graceful {
            // Our close frame is out: give the client a moment to answer it, so it sees a
            // clean close rather than a reset.
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        drop(stream);
        let _ = invoker.await;
        info!(connection_id = %conn.id(), code = cause.code, reason = %cause.reason, "WebSocket closed");
        self.finish(&conn).await;
    }

    /// Unregisters the connection and runs `$disconnect` for it, once.
    async fn finish(&self, conn: &Connection) {
        self.unregister(conn.id());
        let cause = conn.cause().unwrap_or_else(CloseCause::abnormal);
        if let Some(function) = self.api.function_for("$disconnect") {
            let request_id = wse::new_id();
            let event = wse::disconnect_event(
                &conn.ctx,
                cause.code,
                &cause.reason,
                self.local_port,
                &request_id,
                Utc::now(),
            );
            let outcome = self.invoke(function, &event).await;
            self.check_outcome(function, conn.id(), "$disconnect", outcome);
        }
        self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
        self.live.send_modify(|n| *n = n.saturating_sub(1));
    }

    async fn invoke_loop(
        self: Arc<Self>,
        conn: Arc<Connection>,
        mut inbound: mpsc::Receiver<(Frame, DateTime<Utc>)>,
    ) {
        while let Some((frame, received_at)) = inbound.recv().await {
            let selected = wse::selection_key(&frame, &self.api.selection_path)
                // `$connect` and friends are not actions a client can pick.
                .filter(|key| !key.starts_with('$'))
                .and_then(|key| self.api.function_for(&key).map(|f| (key.clone(), f)));
            let (route_key, function) = match selected {
                Some(found) => found,
                None => match self.api.function_for("$default") {
                    Some(function) => ("$default".to_owned(), function),
                    None => {
                        conn.send_frame(wse::no_route_frame(conn.id(), &wse::new_id()));
                        continue;
                    }
                },
            };
            let request_id = wse::new_id();
            let event = wse::message_event(
                &conn.ctx,
                &route_key,
                &frame,
                &request_id,
                &wse::new_id(),
                received_at,
            );
            let outcome = self.invoke(function, &event).await;
            if !self.check_outcome(function, conn.id(), &route_key, outcome) {
                conn.send_frame(wse::internal_error_frame(conn.id(), &request_id));
            }
        }
    }

    async fn invoke(
        &self,
        function: &str,
        event: &serde_json::Value,
    ) -> Result<Outcome, InvokeError> {
        let Some(pool) = self.pool.function(function) else {
            // Routes and the pool come from the same template.
            return Err(InvokeError::SpawnFailed(format!("no function {function}")));
        };
        let payload = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        let pool = pool.clone();
        // A task of its own, as on the HTTP side: the invocation runs to its end even if
        // the caller goes away, so its instance returns to the pool.
        match tokio::spawn(async move { pool.invoke(payload).await }).await {
            Ok(result) => result,
            Err(join) => Err(InvokeError::SpawnFailed(join.to_string())),
        }
    }

    /// Logs a failed or non-2xx route invocation; returns whether the invocation itself
    /// succeeded (a non-2xx answer is the function's choice, not a failure API Gateway
    /// reports to the client).
    fn check_outcome(
        &self,
        function: &str,
        connection_id: &str,
        route_key: &str,
        outcome: Result<Outcome, InvokeError>,
    ) -> bool {
        let failed = |detail: String| {
            self.counters
                .invocation_failures
                .fetch_add(1, Ordering::Relaxed);
            warn!(function, route_key, connection_id, %detail, "WebSocket route invocation failed");
        };
        match outcome {
            Ok(Outcome::Error { error_type, .. }) => {
                failed(format!("function error {error_type}"));
                false
            }
            Err(e) => {
                failed(e.to_string());
                false
            }
            Ok(outcome) => {
                match http_api::parse_outcome(function, outcome) {
                    Ok(r) if r.status.is_success() => {}
                    Ok(r) => failed(format!("status {}", r.status.as_u16())),
                    // A message route's response is discarded anyway; only worth a log.
                    Err(_) => failed("invalid response".to_owned()),
                }
                true
            }
        }
    }
}

fn read_error_cause(error: &axum::Error) -> CloseCause {
    let text = error.to_string();
    if text.contains("Message too long") || text.contains("Space limit exceeded") {
        CloseCause::new(CloseKind::Graceful, 1009, "Message too big")
    } else {
        CloseCause::new(
            CloseKind::Abrupt,
            1006,
            format!("Connection closed abnormally: {text}"),
        )
    }
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Writes queued frames until the connection closes; then, for a graceful close, the
/// frames queued before it and a close frame.
async fn write_loop(
    mut sink: Sink,
    mut outbound: mpsc::Receiver<Message>,
    mut close: watch::Receiver<Option<CloseCause>>,
    hub: Arc<Hub>,
) {
    let abrupt = |c: &Option<CloseCause>| c.as_ref().is_some_and(|c| c.kind == CloseKind::Abrupt);
    loop {
        let message = tokio::select! {
            biased;
            _ = close.wait_for(Option::is_some) => break,
            message = outbound.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        // A slow client blocks this send; an overflow must still be able to drop it.
        tokio::select! {
            biased;
            _ = close.wait_for(abrupt) => return,
            sent = sink.send(message) => {
                if sent.is_err() {
                    return;
                }
                hub.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let Some(cause) = close.borrow().clone() else {
        return;
    };
    match cause.kind {
        CloseKind::Abrupt => {}
        // The client closed: no more data frames may follow; `close` flushes the reply
        // tungstenite queued for its close frame.
        CloseKind::ByClient => {
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, sink.close()).await;
        }
        CloseKind::Graceful => {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                while let Ok(message) = outbound.try_recv() {
                    if sink.send(message).await.is_err() {
                        return;
                    }
                    hub.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                let frame = CloseFrame {
                    code: cause.code,
                    reason: cause.reason.clone().into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
            })
            .await;
        }
    }
}
