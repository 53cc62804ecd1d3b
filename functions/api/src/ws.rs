//! WebSocket route handlers: one per route of the WebSocket API (`$connect`,
//! `$disconnect`, `$default`, `chat`, `react`, `question`, `heartbeat`, `ping`).
//!
//! Socket functions answer the caller through the Management API (there is no route
//! response), so every refusal is an error frame to that connection only: nothing is
//! stored and nothing is broadcast. Events born here (chat, questions) fan out at once;
//! reactions, joins, leaves and counts are stored and go out in coalesced batches through
//! the table's stream (see `fanout`).
//!
//! Storage-call budgets (warm instance; `tests/tests/budgets.rs` counts them on the real
//! binaries; docs/architecture.md section 6): `$connect` <= 2 with its authorizer (the
//! standing of a signed-in user not seen in the last 2 s, then one write), `$disconnect` 1
//! write (the listing's delete), a chat message <= 2 before its fan-out (the rate bucket's conditional write and
//! the message's transaction), a reaction 1 write, a heartbeat 1 write. A notifications
//! socket (no `streamId`): `$connect` 1 transaction, `$disconnect` 2. No route reads its
//! connection: `ws-authorize`'s context says who and where (see `ws_authorizer`); other
//! reads come from the warm caches (`cache.rs`, stated staleness) when they can.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use rill_core::chat::{NewReaction, Reaction};
use rill_core::event::EventType;
use rill_core::realtime::{ClientFrame, Connection, Question, Refusal, error_frame, parse_frame};
use rill_core::store::Origin;
use rill_core::{StreamStatus, ids, time};
use serde_json::json;

use crate::broadcast::{emit, send_to};
use crate::handlers::chat::post_chat;
use crate::ws_authorizer::{Admission, admission_of, connection_of};
use crate::{ApiError, App};

pub type WsRequest = ApiGatewayWebsocketProxyRequest;
pub type WsResponse = ApiGatewayProxyResponse;

/// AWS closes a WebSocket after two hours; connection items expire a little later in case
/// the `$disconnect` never comes.
const CONNECTION_TTL: chrono::Duration = chrono::Duration::minutes(125);

fn respond(status: i64, body: Option<serde_json::Value>) -> WsResponse {
    let mut r = WsResponse::default();
    r.status_code = status;
    r.body = body.map(|b| Body::Text(b.to_string()));
    r
}

fn ok() -> WsResponse {
    respond(200, None)
}

fn connection_id(req: &WsRequest) -> Result<String, ApiError> {
    req.request_context
        .connection_id
        .clone()
        .ok_or_else(|| ApiError::InvalidQuery("no connection id in the event".into()))
}

/// A request header as text, if present and readable.
fn header(req: &WsRequest, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Sends the refusal to the caller only.
async fn reply_error(app: &App, connection_id: &str, refusal: &Refusal) -> WsResponse {
    send_to(app, connection_id, &error_frame(refusal, time::now())).await;
    ok()
}

/// Tells a socket that its frame failed (see `runtime::run_ws`).
pub(crate) async fn tell_failure(app: &App, connection_id: &str, e: &ApiError) {
    reply_error(app, connection_id, &refusal_of(e)).await;
}

fn refusal_of(e: &ApiError) -> Refusal {
    match e {
        ApiError::Refused(r) => r.clone(),
        ApiError::Internal(_) => Refusal::new("internal", "something went wrong; try again"),
        other => Refusal::new(other.code(), other.to_string()),
    }
}

/// `$connect`: answers what `ws-authorize` decided (see [`crate::ws_authorizer`]): a
/// refusal with its status and error body, else registers the socket. Storage: one write
/// (a stream's socket: its item; a notifications socket: one transaction).
pub async fn connect(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let conn_id = connection_id(&req)?;
    let Some(admission) = admission_of(&req) else {
        // A deployment without the authorizer in front: fail closed.
        return Err(ApiError::Internal(
            "$connect without the authorizer's context (ws-authorize)".into(),
        ));
    };
    match admission {
        Admission::Refused {
            status,
            code,
            message,
        } => Ok(respond(
            i64::from(status),
            Some(json!({"error": {"code": code, "message": message}})),
        )),
        Admission::Notifications { user } => {
            app.notifications
                .open_socket(&user.user_id, &conn_id, time::now() + CONNECTION_TTL)
                .await?;
            Ok(ok())
        }
        Admission::Stream { .. } => {
            let Some(mut connection) = connection_of(&req) else {
                return Err(ApiError::Internal(
                    "no connection time in the $connect event".into(),
                ));
            };
            connection.country = header(&req, "cloudfront-viewer-country")
                .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()));
            connection.user_agent = header(&req, "user-agent").map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(rill_core::realtime::USER_AGENT_MAX)
                    .collect()
            });
            // One write. Joins are counted and announced, paced, by `events-presence` from
            // the table stream, never one fan-out per join here: a crowd arriving would cost
            // N² deliveries.
            app.realtime
                .open_connection(&connection, connection.connected_at + CONNECTION_TTL)
                .await?;
            Ok(ok())
        }
    }
}

/// `$disconnect`: removes the connection's listing, one write, from what the authorizer's
/// context says (no read). The count, the leave and the ended view (watch time) follow
/// from the removal in `events-presence`. A notifications socket: 2 (its lookup, its
/// user's set).
pub async fn disconnect(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let conn_id = connection_id(&req)?;
    match admission_of(&req) {
        Some(Admission::Stream { .. }) => {
            if let Some(connection) = connection_of(&req) {
                app.realtime.close_connection(&connection).await?;
            }
        }
        Some(Admission::Notifications { .. }) => {
            app.notifications.close_socket(&conn_id).await?;
        }
        // Refused or unknown: nothing was registered.
        Some(Admission::Refused { .. }) | None => {}
    }
    Ok(ok())
}

/// `$default`: whatever no route took: not JSON, no or unknown action.
pub async fn default(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let conn_id = connection_id(&req)?;
    let refusal = match parse_frame(req.body.as_deref().unwrap_or("")) {
        Err(r) => r,
        Ok(_) => Refusal::new("unknown_action", "this action has no route"),
    };
    Ok(reply_error(&app, &conn_id, &refusal).await)
}

/// Parses the frame and finds the caller's connection in the authorizer's context (no
/// read); refusals go back to the caller.
fn prepare(
    req: &WsRequest,
) -> Result<Result<(String, ClientFrame, Connection), Refusal>, ApiError> {
    let conn_id = connection_id(req)?;
    let frame = match parse_frame(req.body.as_deref().unwrap_or("")) {
        Ok(f) => f,
        Err(r) => return Ok(Err(r)),
    };
    match connection_of(req) {
        Some(c) => Ok(Ok((conn_id, frame, c))),
        None => Ok(Err(Refusal::new(
            "not_connected",
            "this connection is not registered; reconnect",
        ))),
    }
}

macro_rules! prepared {
    ($app:expr, $req:expr) => {
        match prepare(&$req)? {
            Ok(v) => v,
            Err(refusal) => {
                let id = connection_id(&$req)?;
                return Ok(reply_error(&$app, &id, &refusal).await);
            }
        }
    };
}

/// `chat {content}`: the same rules as REST chat, then delivered to every viewer.
pub async fn chat(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let (conn_id, frame, connection) = prepared!(app, req);
    let ClientFrame::Chat { content } = frame else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("invalid_frame", "expected a chat frame"),
        )
        .await);
    };
    // A cold instance reads the connection list alongside the checks and the write rather
    // than after them, so its first message goes out as soon as it is stored.
    let (stream, ()) = tokio::join!(
        app.stream_cached(&connection.stream_id),
        crate::broadcast::prefetch_list(&app, &connection.stream_id)
    );
    let Some(stream) = stream? else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("not_found", "stream not found"),
        )
        .await);
    };
    match post_chat(
        &app,
        &stream,
        connection.principal().as_ref(),
        &content,
        Origin::Socket,
    )
    .await
    {
        Ok(message) => {
            emit(
                &app,
                EventType::ChatMessage,
                &stream.id,
                serde_json::to_value(&message).unwrap_or_default(),
                &conn_id,
            )
            .await?;
            Ok(ok())
        }
        Err(e) => Ok(reply_error(&app, &conn_id, &refusal_of(&e)).await),
    }
}

/// How long a reaction may wait for its function before it is too late to be worth
/// storing. After it the reaction still needs its write, up to 250 ms for the next poll of
/// the table stream and a fan-out to every viewer (0.3-0.5 s for 1,000 here): half a
/// second of queueing leaves that half of the 1.5 s budget. On AWS a function rarely waits
/// at all (Lambda scales out); this bites when the stream is busier than the store or the
/// account's concurrency allows. `REACTION_MAX_WAIT_MS` overrides it ([`App`]'s
/// `reaction_max_wait_ms`).
pub const REACTION_MAX_WAIT_MS: i64 = 500;

/// Set by this instance's first reaction (see `react`).
static REACT_INSTANCE_WARM: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `react {emoji, positionX?, positionY?}`: stored; the fan-out sends reactions in batches.
pub async fn react(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    // The wait is measured to the function's entry: its own reads below are not queueing.
    let entered_ms = time::now().timestamp_millis();
    let (conn_id, frame, connection) = prepared!(app, req);
    let ClientFrame::React {
        emoji,
        position_x,
        position_y,
    } = frame
    else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("invalid_frame", "expected a react frame"),
        )
        .await);
    };
    let Some(stream) = app.stream_cached(&connection.stream_id).await? else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("not_found", "stream not found"),
        )
        .await);
    };
    if stream.status != StreamStatus::Live {
        let r = Refusal::new(
            "not_live",
            format!("reactions need a live stream; it is {}", stream.status),
        );
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    if !stream.settings.reactions_enabled {
        let r = Refusal::new(
            "reactions_disabled",
            "reactions are turned off for this stream",
        );
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    // A reaction is a live moment. One that waited longer than this for a function (a
    // storm beyond what the store takes) would reach viewers after the moment has passed:
    // it is refused, not stored, so a backlog drains instead of growing.
    // A cold instance's first reaction waited for the instance to start (init, first
    // reads), not behind a backlog: it is never refused, so a viewer's first tap on a quiet
    // stream is not lost to a cold start.
    let warm = REACT_INSTANCE_WARM.swap(true, std::sync::atomic::Ordering::Relaxed);
    let waited_ms = entered_ms - req.request_context.request_time_epoch;
    if warm && req.request_context.request_time_epoch > 0 && waited_ms > app.reaction_max_wait_ms {
        let r = Refusal::new(
            "reaction_late",
            format!(
                "the reaction waited {waited_ms} ms; reactions are dropped when the stream is too busy to deliver them on time"
            ),
        );
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    // Anonymous viewers react too; they are told apart by connection.
    let user = connection
        .principal()
        .unwrap_or_else(|| rill_core::Principal {
            user_id: format!("anon:{conn_id}"),
            display_name: "anonymous".into(),
        });
    let input = NewReaction {
        emoji,
        position_x,
        position_y,
    };
    match Reaction::create(ids::new_id(), &stream.id, &user, &input, time::now()) {
        Ok(reaction) => {
            app.chat.add_reaction(&reaction).await?;
            Ok(ok())
        }
        Err(v) => Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("validation_failed", v.to_string()),
        )
        .await),
    }
}

/// `question {content}`: signed-in users ask; everyone sees it at once.
pub async fn question(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let (conn_id, frame, connection) = prepared!(app, req);
    let ClientFrame::Question { content } = frame else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("invalid_frame", "expected a question frame"),
        )
        .await);
    };
    let Some(user) = connection.principal() else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("unauthorized", "sign in to ask"),
        )
        .await);
    };
    let Some(stream) = app.stream_cached(&connection.stream_id).await? else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("not_found", "stream not found"),
        )
        .await);
    };
    if stream.status.is_final() {
        let r = Refusal::new(
            "stream_over",
            format!("questions are closed: the stream is {}", stream.status),
        );
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    let standing = app.standing_cached(&stream, &user.user_id).await?;
    // A member whose role was revoked since `$connect` asks nothing more.
    if !standing.views(&stream) {
        let r = Refusal::new("not_found", "stream not found");
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    if standing.is_banned {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("banned", "you are banned from this stream"),
        )
        .await);
    }
    let q = match Question::create(ids::new_id(), &stream.id, &user, &content, time::now()) {
        Ok(q) => q,
        Err(v) => {
            return Ok(reply_error(
                &app,
                &conn_id,
                &Refusal::new("validation_failed", v.to_string()),
            )
            .await);
        }
    };
    app.questions.put_question(&q, Origin::Socket).await?;
    emit(
        &app,
        EventType::Question,
        &stream.id,
        json!({"question": q}),
        &conn_id,
    )
    .await?;
    Ok(ok())
}

/// `heartbeat {quality, buffering}`: the viewer's playback report, for analytics.
pub async fn heartbeat(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let (conn_id, frame, connection) = prepared!(app, req);
    let ClientFrame::Heartbeat(heartbeat) = frame else {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("invalid_frame", "expected a heartbeat frame"),
        )
        .await);
    };
    if heartbeat.quality.as_ref().is_some_and(|q| q.len() > 32) {
        return Ok(reply_error(
            &app,
            &conn_id,
            &Refusal::new("invalid_frame", "quality is at most 32 characters"),
        )
        .await);
    }
    app.realtime
        .record_heartbeat(&connection, &heartbeat.report(), time::now())
        .await?;
    Ok(ok())
}

/// `ping`: answers `{"type":"pong","ts":...}`; also counts as activity for the idle timeout.
pub async fn ping(app: Arc<App>, req: WsRequest) -> Result<WsResponse, ApiError> {
    let conn_id = connection_id(&req)?;
    if let Err(r) = parse_frame(req.body.as_deref().unwrap_or("")) {
        return Ok(reply_error(&app, &conn_id, &r).await);
    }
    let pong = json!({"type": "pong", "ts": time::now().timestamp_millis()}).to_string();
    send_to(&app, &conn_id, &pong).await;
    Ok(ok())
}
