//! The WHIP HTTP resource (RFC 9725) as axum routes.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/whip/{streamId}` | 201 + SDP answer, `Location: …/whip/{streamId}/{sessionId}` |
//! | DELETE | `/whip/{streamId}/{sessionId}` | 200, the session ends (404 if unknown) |
//! | PATCH | `/whip/{streamId}/{sessionId}` | 405: neither trickle ICE nor ICE restarts are supported |
//! | OPTIONS | both | 204 CORS preflight |
//!
//! The POST checks run cheapest first and the authoriser last, so that it (and the pipeline
//! it may start) only sees offers we can actually ingest:
//! no `Authorization: Bearer` → 401; not `application/sdp` → 415; too large → 413;
//! not UTF-8 / not SDP → 400; no sending H.264 video or Opus audio → 406 (the message names
//! what was offered); no session slot → 503; str0m cannot negotiate it → 406/400; then the
//! authoriser: wrong key → 401, not allowed now → 403, already publishing → 409,
//! unavailable or too slow → 503. Errors are `{"error":{"code","message"}}` like the REST
//! API's.
//!
//! Every response carries `Access-Control-Allow-Origin: *` and exposes `Location`, so a
//! broadcaster page on another origin (the web app) can publish. No cookies are involved —
//! the key travels in `Authorization` — so a wildcard origin gives nothing away.
//!
//! The session id in the resource URL is 128 random bits: knowing it is the capability to
//! end the session (in WHIP the resource URL is what the client keeps to end it).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::{Candidate, Rtc, RtcConfig};
use tokio::sync::oneshot;

use super::offer::OfferSummary;
use super::server::{Command, NewSession, WhipHandle};
use crate::publish::{PublishRequest, PublishSink, Refusal, StreamKey};

const SDP: &str = "application/sdp";

/// The WHIP routes, with CORS, bound to `handle`'s engine. Mount next to other routes with
/// `Router::merge`; the router is generic over the outer state so it fits any app.
pub fn router<S>(handle: WhipHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/whip/{stream_id}", post(publish).options(preflight))
        .route(
            "/whip/{stream_id}/{session_id}",
            axum::routing::delete(stop).patch(patch).options(preflight),
        )
        .layer(middleware::map_response(cors))
        .with_state(handle)
}

async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Patch"),
    );
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "POST, DELETE, PATCH, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            (header::HeaderName::from_static("accept-post"), SDP),
        ],
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message: String = message.into();
    let mut response = (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// `[A-Za-z0-9_-]{1,128}`: ULIDs, UUIDs and slugs pass; nothing that could confuse a log
/// line or a Location header does.
fn valid_stream_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn bearer(headers: &HeaderMap) -> Option<StreamKey> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| StreamKey::new(token))
}

fn is_sdp(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SDP))
}

fn refusal_response(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::BadKey => error(
            StatusCode::UNAUTHORIZED,
            "invalid_stream_key",
            "Invalid stream key.",
        ),
        Refusal::NotAllowed(why) => {
            error(StatusCode::FORBIDDEN, "publish_not_allowed", why.clone())
        }
        Refusal::AlreadyPublishing => error(
            StatusCode::CONFLICT,
            "already_publishing",
            "This stream is already being published.",
        ),
        Refusal::HeldElsewhere => error(
            StatusCode::CONFLICT,
            "published_elsewhere",
            "This stream is being published on another ingest node.",
        ),
        // Retry-After: a client (or the WHIP router) tries again, elsewhere or later.
        Refusal::NodeFull => retry_after(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_full",
            "This ingest node takes no new streams now; retry (another node may).",
        )),
        Refusal::Unavailable => retry_after(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The ingest node cannot take this stream right now; retry shortly.",
        )),
    }
}

/// Seconds a refused publisher should wait: about one registry heartbeat.
const RETRY_AFTER_SECONDS: &str = "5";

fn retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

async fn publish(
    State(handle): State<WhipHandle>,
    Path(stream_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !valid_stream_id(&stream_id) {
        return error(StatusCode::NOT_FOUND, "not_found", "Unknown stream.");
    }
    let Some(stream_key) = bearer(&parts.headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing_stream_key",
            "Send the stream key as `Authorization: Bearer <streamKey>`.",
        );
    };
    if !is_sdp(&parts.headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The offer must be sent as `Content-Type: application/sdp`.",
        );
    }
    let config = &handle.shared.config;
    let body = match axum::body::to_bytes(body, config.max_offer_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer_too_large",
                format!("The offer is larger than {} bytes.", config.max_offer_bytes),
            );
        }
    };
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
            "The offer is not UTF-8 text.",
        );
    };
    let offer = match SdpOffer::from_sdp_string(sdp) {
        Ok(o) => o,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_sdp",
                format!("The offer is not valid SDP: {e}"),
            );
        }
    };
    if let Err(problem) = OfferSummary::scan(sdp).check() {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported_codecs",
            problem.to_string(),
        );
    }
    if handle.shared.commands.is_closed() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The ingest node is shutting down.",
        );
    }
    let Some(slot) = handle.reserve() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The ingest node is at capacity; retry shortly.",
        );
    };
    // Negotiating before authorising keeps the authoriser (and the pipeline it may start)
    // out of offers we would refuse anyway; it costs a DTLS certificate, no media.
    let (rtc, answer) = match negotiate(&handle, offer) {
        Ok(v) => v,
        Err(response) => return *response,
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let request = PublishRequest::whip(stream_id.clone(), stream_key, peer);
    let sink = match tokio::time::timeout(
        config.authorise_timeout,
        handle.shared.authoriser.authorise(request),
    )
    .await
    {
        Ok(Ok(sink)) => sink,
        Ok(Err(refusal)) => {
            // Never the key: the stream id and the peer are enough to investigate.
            tracing::warn!(stream = %stream_id, ?peer, ?refusal, "whip publish refused");
            return refusal_response(&refusal);
        }
        Err(_) => {
            tracing::warn!(stream = %stream_id, ?peer, "whip authorisation timed out");
            return refusal_response(&Refusal::Unavailable);
        }
    };
    let session_id = match new_session_id() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "whip session id: no randomness");
            end_unused(sink, config.end_timeout);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error.",
            );
        }
    };
    let new = NewSession {
        id: session_id.clone(),
        stream_id: stream_id.clone(),
        rtc,
        sink,
        slot,
    };
    // Handed over before the answer leaves, so the engine knows the ICE credentials when
    // the publisher's first STUN request arrives.
    if let Err(tokio::sync::mpsc::error::SendError(cmd)) = handle
        .shared
        .commands
        .send(Command::Add(Box::new(new)))
        .await
    {
        if let Command::Add(new) = cmd {
            end_unused(new.sink, config.end_timeout);
        }
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The ingest node is shutting down.",
        );
    }
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), session_id);
    tracing::info!(stream = %stream_id, ?peer, session = %&session_id[..8], "whip publish accepted");
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, location),
        ],
        answer.to_sdp_string(),
    )
        .into_response()
}

/// An `Rtc` for one publisher: ICE-lite with our one host candidate, receive-only H.264
/// and Opus (str0m answers the offer's send-only sections with recv-only ones, NACK and
/// PLI feedback included when offered), statistics on.
fn negotiate(handle: &WhipHandle, offer: SdpOffer) -> Result<(Rtc, SdpAnswer), Box<Response>> {
    let config = &handle.shared.config;
    let mut rtc = rtc_config(config.stats_interval).build(std::time::Instant::now());
    let internal = |what: String| {
        tracing::error!(error = %what, "whip negotiation failed");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error.",
        )
    };
    let candidate =
        Candidate::host(handle.shared.candidate, "udp").map_err(|e| internal(e.to_string()))?;
    rtc.add_local_candidate(candidate)
        .ok_or_else(|| internal("host candidate refused".to_owned()))?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
            format!("The offer cannot be negotiated: {e}"),
        ))
    })?;
    // The offer names H.264 and Opus (checked above), but maybe only in variants we cannot
    // receive (e.g. an H.264 profile str0m does not match): then no codec survives.
    if !answer_receives_both(&answer.to_sdp_string()) {
        return Err(Box::new(error(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported_codecs",
            "No offered H.264 (packetization-mode 0/1, profiles 42001f/42e01f/4d001f/64001f) \
             or Opus variant can be received.",
        )));
    }
    Ok((rtc, answer))
}

/// What every publisher's `Rtc` is built from: ICE-lite, H.264 and Opus only, statistics
/// every `stats_interval`. Shared with the fuzz harness (`super::fuzz`).
pub(super) fn rtc_config(stats_interval: Duration) -> RtcConfig {
    Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_stats_interval(Some(stats_interval))
}

/// Whether an answer (SDP text) kept an H.264 and an Opus codec.
pub(super) fn answer_receives_both(answer: &str) -> bool {
    let accepted = |codec: &str| {
        answer
            .lines()
            .any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_lowercase().contains(codec))
    };
    accepted("h264/90000") && accepted("opus/48000")
}

/// A sink was handed out but no session will feed it: it still gets its End.
fn end_unused(sink: PublishSink, end_timeout: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(end_timeout, sink.send_end()).await;
    });
}

fn new_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn stop(
    State(handle): State<WhipHandle>,
    Path((stream_id, session_id)): Path<(String, String)>,
) -> Response {
    let (reply, answer) = oneshot::channel();
    let cmd = Command::Delete {
        stream_id,
        session_id,
        reply,
    };
    if handle.shared.commands.send(cmd).await.is_err() {
        // The engine is gone, and with it every session.
        return error(StatusCode::NOT_FOUND, "not_found", "No such session.");
    }
    match answer.await {
        Ok(true) => StatusCode::OK.into_response(),
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such session."),
    }
}

async fn patch() -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Trickle ICE and ICE restarts are not supported: send the offer with its candidates, \
         or none (the server is ICE-lite and learns the publisher's address from its checks).",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    response
}
