//! `whip-router`: the one public WHIP endpoint (RFC 9725) in front of the ingest fleet.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/whip/{streamId}` | pick a node, forward the SDP offer, relay its answer |
//! | PATCH | `/whip/{streamId}/{sessionId}` | forward to the stream's lease holder (trickle ICE) |
//! | DELETE | `/whip/{streamId}/{sessionId}` | forward to the stream's lease holder (hang up) |
//!
//! CORS preflight is answered by the HTTP API's CORS configuration (and locally by
//! rill-gateway), exposing `Location`, `Link`, `ETag`, `Accept-Patch` and `Retry-After` as
//! the node itself does.
//!
//! **Proxy, not redirect.** The router forwards the offer to the chosen node and relays the
//! answer, rather than answering `307` with the node's address: a browser page served over
//! HTTPS may not POST to a node's plain-HTTP address (mixed content), nodes have no
//! per-node TLS certificate, and their HTTP port is reachable only inside the ingest VPC
//! (the router runs there). TLS ends at API Gateway; the router talks plain HTTP to the
//! node's `privateUrl`; the SDP answer carries the node's own public IP as its ICE
//! candidate, so the media (UDP) goes straight from the publisher to the node and never
//! through the router. The cost is one extra hop on signalling only (three small
//! requests per session).
//!
//! POST: `rill_core::fleet::choose_node` on the stream's lease and the registry (the live
//! lease holder for a reconnect, else the live active node with the most free slots). The
//! offer goes to `{privateUrl}/whip/{streamId}` with its body, `Content-Type` and
//! `Authorization` unchanged; a node that answers 503 (full, draining) or cannot be
//! reached within [`NODE_TIMEOUT`] is excluded and the choice is made again, at most
//! [`MAX_TRIES`] nodes in all. Any other answer (201, or the node's own 4xx such as a wrong
//! stream key) is relayed: status, body and the WHIP headers, with `Location` rewritten to
//! this router's own path (`{request path}/{sessionId}`, a path-absolute reference that
//! resolves against whatever origin the client used), so PATCH and DELETE come back here.
//! No node left: 503 `no_capacity` with `Retry-After`.
//!
//! PATCH/DELETE go to the stream's lease holder while its lease is unexpired and its
//! heartbeat fresh (the node that took the offer holds the lease for as long as it carries
//! the stream); none: 404.
//!
//! Invariants:
//! - the stream id (`[A-Za-z0-9_-]{1,128}`, the node's own rule) and the session id are
//!   checked before any storage call or forward: a bad one is a 400 that touched nothing;
//! - the stream key in `Authorization` is passed through to the node, which checks it; the
//!   router never logs it (nor any header value) and never reads it;
//! - **storage-call budget: 2 per request** (every method): the stream's lease (one
//!   consistent `GetItem`) and the registry (one `Query` on the index partition; a further
//!   page only past 1 MB of registry), read concurrently, once; retries reuse them;
//! - at most [`MAX_TRIES`] forwards of [`NODE_TIMEOUT`] each per POST (the function's
//!   timeout in infra/template.yaml is above their sum).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use rill_core::fleet::{NodeRecord, choose_node};
use rill_core::time;

use crate::{ApiError, App};

/// How long one node may take to answer (connect included).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting inside the VPC is fast; a node that does not accept within this is gone.
pub const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Nodes one POST may try.
pub const MAX_TRIES: usize = 3;
/// `Retry-After` when no node can take the stream.
pub const RETRY_AFTER_SECS: u32 = 5;
/// Largest offer forwarded (the node's own default limit).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Request headers forwarded to the node (never logged).
const FORWARDED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::IF_MATCH,
    header::ACCEPT,
];

/// Node response headers relayed to the publisher (`Location` separately, rewritten).
const RELAYED: [&str; 8] = [
    "content-type",
    "etag",
    "link",
    "retry-after",
    "www-authenticate",
    "accept-patch",
    "accept-post",
    "allow",
];

/// `[A-Za-z0-9_-]{1,128}`: the node's rule for stream ids, used for session ids too (the
/// node's are 32 hex digits).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn path_id(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters()
        .first(name)
        .filter(|id| valid_id(id))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::InvalidPath(format!("{name} must be 1-128 of [A-Za-z0-9_-]")))
}

fn body_bytes(req: &Request) -> Result<Bytes, ApiError> {
    let bytes = match req.body() {
        Body::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
        Body::Binary(b) => Bytes::copy_from_slice(b),
        _ => Bytes::new(),
    };
    if bytes.len() > MAX_OFFER_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_OFFER_BYTES));
    }
    Ok(bytes)
}

/// What a node answered.
#[derive(Debug)]
struct NodeAnswer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

/// The router's HTTP client, built once per function instance.
#[derive(Debug, Clone)]
pub struct WhipRouter {
    http: reqwest::Client,
}

impl WhipRouter {
    pub fn new() -> Result<WhipRouter, String> {
        let http = reqwest::Client::builder()
            .timeout(NODE_TIMEOUT)
            .connect_timeout(NODE_CONNECT_TIMEOUT)
            // A node answers itself; a redirect would be a misconfiguration to surface.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(WhipRouter { http })
    }

    /// The function's entry point: POST, PATCH or DELETE (the template routes no other).
    pub async fn handle(&self, app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
        match *req.method() {
            Method::POST => self.publish(&app, &req).await,
            Method::PATCH | Method::DELETE => self.session(&app, &req).await,
            _ => Err(ApiError::NotFound("route")),
        }
    }

    async fn publish(&self, app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
        let stream_id = path_id(req, "streamId")?;
        let body = body_bytes(req)?;
        let now = time::now();
        let (lease, nodes) = tokio::join!(app.fleet.lease(&stream_id), app.fleet.nodes());
        let (lease, mut nodes) = (lease?, nodes?);
        let path = format!("/whip/{stream_id}");
        for attempt in 1..=MAX_TRIES {
            let Some(node) = choose_node(&nodes, lease.as_ref(), now) else {
                break;
            };
            let node_id = node.id.clone();
            match self
                .forward(node, Method::POST, &path, req, body.clone())
                .await
            {
                Ok(answer) if answer.status == 503 => {
                    tracing::info!(stream = %stream_id, node = %node_id, attempt, "node refused (503): trying the next");
                }
                Ok(answer) => {
                    tracing::info!(stream = %stream_id, node = %node_id, attempt, status = answer.status, "offer forwarded");
                    return relay(answer, Some((req.uri().path(), &stream_id)));
                }
                Err(e) => {
                    tracing::warn!(stream = %stream_id, node = %node_id, attempt, error = %e, "node unreachable: trying the next");
                }
            }
            nodes.retain(|n| n.id != node_id);
        }
        tracing::warn!(stream = %stream_id, "no ingest node can take the stream");
        Err(ApiError::Unavailable {
            code: "no_capacity",
            message: "no ingest node can take this stream now; retry shortly".into(),
            retry_after_secs: RETRY_AFTER_SECS,
        })
    }

    async fn session(&self, app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
        let stream_id = path_id(req, "streamId")?;
        let session_id = path_id(req, "sessionId")?;
        let body = body_bytes(req)?;
        let now = time::now();
        let (lease, nodes) = tokio::join!(app.fleet.lease(&stream_id), app.fleet.nodes());
        let (lease, nodes) = (lease?, nodes?);
        let holder = lease
            .filter(|l| !l.is_expired(now))
            .and_then(|l| nodes.iter().find(|n| n.id == l.node_id && n.is_alive(now)))
            .ok_or(ApiError::NotFound("publishing session"))?;
        let path = format!("/whip/{stream_id}/{session_id}");
        let method = req.method().clone();
        match self.forward(holder, method.clone(), &path, req, body).await {
            Ok(answer) => {
                tracing::info!(stream = %stream_id, node = %holder.id, %method, status = answer.status, "session request forwarded");
                relay(answer, None)
            }
            Err(e) => {
                tracing::warn!(stream = %stream_id, node = %holder.id, %method, error = %e, "lease holder unreachable");
                Err(ApiError::Unavailable {
                    code: "node_unreachable",
                    message: "the ingest node carrying this session does not answer; retry shortly"
                        .into(),
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
        }
    }

    async fn forward(
        &self,
        node: &NodeRecord,
        method: Method,
        path: &str,
        req: &Request,
        body: Bytes,
    ) -> Result<NodeAnswer, reqwest::Error> {
        let url = format!("{}{path}", node.private_url.trim_end_matches('/'));
        let mut out = self.http.request(method, url).body(body);
        for name in FORWARDED {
            for value in req.headers().get_all(&name) {
                out = out.header(&name, value);
            }
        }
        let res = out.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.bytes().await?;
        Ok(NodeAnswer {
            status,
            headers,
            body,
        })
    }
}

/// The session id in a node's `Location` (`/whip/{streamId}/{sessionId}`, or an absolute
/// URL with that path), if it names this stream.
fn session_of(location: &str, stream_id: &str) -> Option<String> {
    let path = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => location,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let session = path.strip_prefix(&format!("/whip/{stream_id}/"))?;
    valid_id(session).then(|| session.to_owned())
}

/// The node's answer as ours. `post` = (this request's path, stream id): `Location` is
/// rewritten to `{path}/{sessionId}`.
fn relay(answer: NodeAnswer, post: Option<(&str, &str)>) -> Result<Response<Body>, ApiError> {
    let mut res = Response::builder().status(answer.status);
    for name in RELAYED {
        for value in answer.headers.get_all(name) {
            res = res.header(name, value);
        }
    }
    if let (Some((own_path, stream_id)), Some(location)) =
        (post, answer.headers.get(header::LOCATION))
    {
        let session = location
            .to_str()
            .ok()
            .and_then(|l| session_of(l, stream_id))
            .ok_or_else(|| {
                ApiError::Internal(format!("node answered an unusable Location: {location:?}"))
            })?;
        res = res.header(
            header::LOCATION,
            format!("{}/{session}", own_path.trim_end_matches('/')),
        );
    }
    let body = if answer.body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(answer.body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    res.body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_nodes_rule() {
        assert!(valid_id("01HXYZABCDEFGHJKMNPQRSTVWX"));
        assert!(valid_id("my-stream_2"));
        assert!(valid_id(&"a".repeat(128)));
        for bad in ["", "a/b", "a b", "x%2Fy", "é", "..", &"a".repeat(129)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn locations_are_read_relative_or_absolute_for_this_stream_only() {
        assert_eq!(
            session_of("/whip/s1/abc123", "s1").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            session_of("http://10.0.0.5:8889/whip/s1/abc123?x=1", "s1").as_deref(),
            Some("abc123")
        );
        assert_eq!(session_of("/whip/s2/abc123", "s1"), None);
        assert_eq!(session_of("/whip/s1/abc/def", "s1"), None);
        assert_eq!(session_of("/whip/s1/", "s1"), None);
    }

    #[test]
    fn answers_are_relayed_with_the_location_pointing_back_here() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/sdp".parse().expect("value"),
        );
        headers.insert(header::LOCATION, "/whip/s1/feed".parse().expect("value"));
        headers.insert(header::ETAG, "\"e1\"".parse().expect("value"));
        headers.insert("x-internal", "1".parse().expect("value"));
        let res = relay(
            NodeAnswer {
                status: 201,
                headers,
                body: Bytes::from_static(b"v=0\r\n"),
            },
            Some(("/whip/s1", "s1")),
        )
        .expect("relayed");
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["location"], "/whip/s1/feed");
        assert_eq!(res.headers()["etag"], "\"e1\"");
        assert_eq!(res.headers()["content-type"], "application/sdp");
        assert!(res.headers().get("x-internal").is_none());
        assert!(matches!(res.body(), Body::Text(t) if t == "v=0\r\n"));
    }

    #[test]
    fn a_location_for_another_stream_is_not_relayed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, "/whip/other/feed".parse().expect("value"));
        let e = relay(
            NodeAnswer {
                status: 201,
                headers,
                body: Bytes::new(),
            },
            Some(("/whip/s1", "s1")),
        )
        .unwrap_err();
        assert_eq!(e.status(), 500);
    }
}
