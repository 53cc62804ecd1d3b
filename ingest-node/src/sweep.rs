//! The orphan sweep: a stream whose ingest node died (SIGKILL, host lost) and whose
//! publisher did not come back would otherwise stay `live` forever, listed on `/live` and
//! played as a live playlist that never grows.
//!
//! One node sweeps at a time: the alive node with the smallest id in the registry (no
//! election needed; when it dies, the next one takes over within a heartbeat or two). Every
//! [`SWEEP_EVERY`] it lists the live streams and, for each one whose lease expired more than
//! the reconnect window ago (or that has none and started longer ago), takes the lease, closes its playlists
//! ([`finalise_orphan`]), marks it ended and releases the lease.
//!
//! Cost per sweep: one registry query, one live-listing query per 100 live streams, and one
//! lease read per live stream; only the sweeping node pays it.

use std::time::Duration;

use rill_core::fleet::{LEASE_TTL, NodeRecord};
use rill_core::store::{ListQuery, Listing};
use rill_core::time;

use crate::node::Node;
use crate::pipeline::takeover::finalise_orphan;
use crate::upload::Uploader;

/// How often the sweeping node looks.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Whether `me` is the node that sweeps: the alive node with the smallest id.
pub fn is_sweeper(me: &str, nodes: &[NodeRecord], now: rill_core::time::Timestamp) -> bool {
    nodes
        .iter()
        .filter(|n| n.is_alive(now))
        .map(|n| n.id.as_str())
        .chain(std::iter::once(me))
        .min()
        == Some(me)
}

/// One sweep (see the module docs). Returns the streams it ended.
pub async fn sweep(node: &Node) -> Vec<String> {
    let Some(membership) = node.membership() else {
        return Vec::new();
    };
    let ports = node.ports();
    let now = time::now();
    match ports.fleet.nodes().await {
        Ok(nodes) if is_sweeper(membership.id(), &nodes, now) => {}
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "sweep: registry unreadable");
            return Vec::new();
        }
    }
    let carried: Vec<String> = node.active().into_iter().map(|(id, ..)| id).collect();
    let grace =
        chrono::Duration::from_std(node.config().reconnect_window + LEASE_TTL).unwrap_or_default();
    let mut ended = Vec::new();
    let mut cursor = None;
    loop {
        let query = ListQuery {
            listing: Listing::Live,
            channel_id: None,
            limit: 100,
            cursor: cursor.take(),
            // Orphans of every visibility are ended.
            scope: rill_core::channel::ListScope::all(),
        };
        let page = match ports.streams.list_streams(&query).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "sweep: live streams unreadable");
                return ended;
            }
        };
        for stream in page.items.iter().filter(|s| !carried.contains(&s.id)) {
            let orphaned = match ports.fleet.lease(&stream.id).await {
                Ok(Some(lease)) => lease.expires_at + grace <= now,
                // Live and never leased: started before the fleet existed, or by hand.
                Ok(None) => stream.started_at.is_some_and(|at| at + grace <= now),
                Err(_) => false,
            };
            if orphaned && finalise(node, stream).await {
                ended.push(stream.id.clone());
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    ended
}

async fn finalise(node: &Node, stream: &rill_core::Stream) -> bool {
    let stream_id = stream.id.as_str();
    let ports = node.ports();
    let Some(membership) = node.membership() else {
        return false;
    };
    let lease = match ports
        .fleet
        .acquire_lease(stream_id, membership.id(), LEASE_TTL, time::now())
        .await
    {
        Ok(lease) => lease,
        // Someone took it meanwhile (a publisher came back): not an orphan.
        Err(_) => return false,
    };
    let uploader = Uploader::for_stream(ports.media.clone(), stream);
    let done = match finalise_orphan(&uploader, ports.streams.as_ref(), stream_id).await {
        Ok(()) => {
            tracing::warn!(
                stream_id,
                "sweep: ended a stream whose node died and whose publisher never came back"
            );
            true
        }
        Err(e) => {
            tracing::error!(stream_id, error = %e, "sweep: could not finalise an orphaned stream");
            false
        }
    };
    if let Err(e) = ports.fleet.release_lease(&lease).await {
        tracing::warn!(stream_id, error = %e, "sweep: lease not released");
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::fleet::NodeState;

    fn node(id: &str, heartbeat: i64) -> NodeRecord {
        let at = |s| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid");
        NodeRecord {
            id: id.into(),
            public_ip: None,
            private_url: String::new(),
            rtmp_addr: String::new(),
            capacity: 1,
            active_streams: 0,
            state: NodeState::Active,
            started_at: at(0),
            heartbeat_at: at(heartbeat),
            version: String::new(),
        }
    }

    #[test]
    fn the_alive_node_with_the_smallest_id_sweeps() {
        let now = chrono::DateTime::from_timestamp(1_800_000_100, 0).expect("valid");
        let nodes = [node("b", 100), node("c", 100), node("a", 10)];
        assert!(is_sweeper("b", &nodes, now), "a's heartbeat is stale");
        assert!(!is_sweeper("c", &nodes, now));
        assert!(is_sweeper("a", &nodes, now), "a node always counts itself");
        assert!(is_sweeper("z", &[], now), "alone: it sweeps");
    }
}
