//! The ingest node registry for operators.
//!
//! `GET /api/nodes` (function `nodes-list`): operators only ([`crate::auth::is_operator`]);
//! 401 without a token, 403 for anyone else. Storage-call budget: one query on the
//! registry's index partition (more only if the registry outgrows one 1 MB page).
//!
//! The registry holds dead nodes' entries until DynamoDB's TTL sweep removes them (hours);
//! the listing therefore decides liveness itself from the heartbeat
//! ([`NodeRecord::is_alive`]) and shows live entries only unless `?all=true`.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::fleet::NodeRecord;
use rill_core::time;
use serde::Serialize;

use crate::request::{bool_param, json};
use crate::{ApiError, App};

/// One registry entry as listed: the record plus whether its heartbeat is fresh.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    #[serde(flatten)]
    node: NodeRecord,
    alive: bool,
    /// Slots left for new publishes (0 when draining or full).
    free: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeList {
    items: Vec<Listed>,
    /// The time liveness was judged at.
    #[serde(with = "rill_core::time::rfc3339_millis")]
    now: time::Timestamp,
}

/// `GET /api/nodes?all=true|false`: registry entries sorted by id.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    app.auth.require_operator(&req).await?;
    let all = bool_param(&req, "all")?;
    let now = time::now();
    let mut items: Vec<Listed> = app
        .fleet
        .nodes()
        .await?
        .into_iter()
        .map(|node| Listed {
            alive: node.is_alive(now),
            free: node.free(),
            node,
        })
        .filter(|n| all || n.alive)
        .collect();
    items.sort_by(|a, b| a.node.id.cmp(&b.node.id));
    json(200, &NodeList { items, now })
}
