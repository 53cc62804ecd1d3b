//! The ingest fleet: the node registry, stream leases, and the pure rules that route a
//! publisher to a node. Storage sits behind [`FleetStore`] (DynamoDB in `rill-aws`); the
//! platform the node runs on (ECS scale-in protection, the utilisation metric) behind
//! [`NodeHost`].
//!
//! Invariants:
//! - **one owner per stream**: a node accepts media for a stream only while it holds the
//!   stream's [`Lease`]; taking one is a conditional write that succeeds only when there is
//!   no lease, it has expired, or it is already the caller's; renewing and releasing are
//!   conditional on the holder and the version, so a node that lost its lease (it was
//!   paused past the expiry and another node took over) can never extend or delete the
//!   new owner's;
//! - a lease lasts [`LEASE_TTL`] and is renewed every [`LEASE_RENEW_EVERY`]: a node that
//!   dies without releasing (SIGKILL) frees its streams within [`LEASE_TTL`];
//! - a registry entry is believed only while its heartbeat is fresh ([`NODE_STALE_AFTER`]):
//!   the table's TTL deletes dead entries eventually, but DynamoDB's TTL sweep can lag by
//!   hours, so readers never rely on it.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::time::Timestamp;

/// How long a lease holds without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often a node renews each lease it holds (four renewals fit in one TTL, so three
/// failed writes in a row still leave the lease standing).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a node rewrites its registry entry.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A registry entry older than this is a dead node's.
pub const NODE_STALE_AFTER: Duration = Duration::from_secs(15);

/// Whether a node takes new publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Active,
    /// Shutting down (SIGTERM): current streams continue until they end or the stop
    /// timeout; new publishes are refused.
    Draining,
}

/// One ingest node as the registry knows it (one registry entry per node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Unique per process: the ECS task id on ECS, otherwise generated at start.
    pub id: String,
    /// The address publishers' WebRTC media reaches (the SDP answer's candidate), when
    /// known.
    pub public_ip: Option<String>,
    /// Base URL of the node's HTTP server inside the network (the WHIP router forwards
    /// offers there), e.g. `http://10.0.1.23:8889`.
    pub private_url: String,
    /// The RTMP address the node listens on (`host:port`), for operators.
    pub rtmp_addr: String,
    /// Streams it can carry in real time ([`capacity_for`], or configured).
    pub capacity: u32,
    /// Streams it carries now (pipelines, including ones waiting for a reconnect).
    pub active_streams: u32,
    pub state: NodeState,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub started_at: Timestamp,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub heartbeat_at: Timestamp,
    /// The node's build (`CARGO_PKG_VERSION`).
    pub version: String,
}

impl NodeRecord {
    /// The heartbeat is recent enough to believe the rest.
    pub fn is_alive(&self, now: Timestamp) -> bool {
        now.signed_duration_since(self.heartbeat_at)
            .to_std()
            .map_or(true, |age| age <= NODE_STALE_AFTER)
    }

    /// Slots left for new streams (0 when draining).
    pub fn free(&self) -> u32 {
        match self.state {
            NodeState::Active => self.capacity.saturating_sub(self.active_streams),
            NodeState::Draining => 0,
        }
    }
}

/// Which node owns a stream (one lease per stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub stream_id: String,
    pub node_id: String,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub expires_at: Timestamp,
    /// Bumped by every take and renewal: the condition of the next write.
    pub version: u64,
}

impl Lease {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }
}

/// Why a lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another node holds the stream until `expires_at`.
    #[error("stream is held by node {node_id}")]
    Held {
        node_id: String,
        expires_at: Timestamp,
    },
    /// The lease is no longer the caller's (expired and taken, or released).
    #[error("lease lost")]
    Lost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registry and leases (contract in the module docs).
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Writes the node's entry (register and every heartbeat), with a TTL past
    /// [`NODE_STALE_AFTER`].
    async fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    /// Removes the node's entry (clean shutdown).
    async fn remove_node(&self, node_id: &str) -> Result<(), StoreError>;
    /// Every registry entry, dead ones included (filter with [`NodeRecord::is_alive`]).
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Takes the stream's lease for `node_id` until `now + ttl`: succeeds when there is no
    /// lease, it expired, or `node_id` already holds it.
    async fn acquire_lease(
        &self,
        stream_id: &str,
        node_id: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, LeaseError>;
    /// Extends a held lease to `now + ttl`; [`LeaseError::Lost`] when it is no longer this
    /// exact lease (holder and version).
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, LeaseError>;
    /// Deletes the lease if it is still this one; a lease already gone is not an error.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    /// The stream's lease, expired or not.
    async fn lease(&self, stream_id: &str) -> Result<Option<Lease>, StoreError>;
}

/// What the platform under a node offers (ECS: task scale-in protection and the scaling
/// metric; locally: nothing).
#[async_trait]
pub trait NodeHost: Send + Sync {
    /// Keeps the node from being chosen for scale-in while it carries streams. Called with
    /// the current state every heartbeat, so an implementation may refresh an expiry.
    async fn protect(&self, protected: bool) -> Result<(), String>;
    /// Publishes `active / capacity` for target-tracking autoscaling.
    async fn report_utilisation(&self, active: u32, capacity: u32) -> Result<(), String>;
}

/// A node on a machine with no platform services (local runs, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

#[async_trait]
impl NodeHost for NoHost {
    async fn protect(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
    async fn report_utilisation(&self, _: u32, _: u32) -> Result<(), String> {
        Ok(())
    }
}

/// CPU seconds per media second of one stream's full ladder from a 1080p30 source at the
/// governor's level 0 (measured: `cargo bench -p rill-ingest --bench bench-ladder`, ~1.4
/// on this project's 2-core machines; see the README's ingest benchmarks).
pub const LADDER_CPU_PER_STREAM: f64 = 1.4;
/// Share of the cores planned for streams: the rest is headroom for packaging, uploads,
/// spikes and the governor's room to step back up.
pub const PLANNED_CPU_SHARE: f64 = 0.85;

/// How many streams a node with `cores` can carry in real time at full quality: at least 1.
pub fn capacity_for(cores: usize) -> u32 {
    let streams = (cores as f64 * PLANNED_CPU_SHARE / LADDER_CPU_PER_STREAM).floor();
    (streams as u32).max(1)
}

/// Where a new publish of `stream_id` should go, given the registry and the stream's lease:
/// the lease holder while it is alive and its lease unexpired (a reconnect goes back to its
/// pipeline, and a second publisher is refused there, not elsewhere); otherwise the live,
/// active node with the most free slots (ties: the lowest load, then the id, so the choice
/// is deterministic). `None`: no node can take it now.
pub fn choose_node<'a>(
    nodes: &'a [NodeRecord],
    lease: Option<&Lease>,
    now: Timestamp,
) -> Option<&'a NodeRecord> {
    if let Some(lease) = lease.filter(|l| !l.is_expired(now))
        && let Some(holder) = nodes
            .iter()
            .find(|n| n.id == lease.node_id && n.is_alive(now))
    {
        return Some(holder);
    }
    nodes
        .iter()
        .filter(|n| n.is_alive(now) && n.free() > 0)
        .max_by(|a, b| {
            a.free()
                .cmp(&b.free())
                .then_with(|| load(b).total_cmp(&load(a)))
                .then_with(|| b.id.cmp(&a.id))
        })
}

fn load(n: &NodeRecord) -> f64 {
    f64::from(n.active_streams) / f64::from(n.capacity.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
    }

    fn node(id: &str, capacity: u32, active: u32, heartbeat: i64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            public_ip: Some("203.0.113.7".into()),
            private_url: format!("http://{id}:8889"),
            rtmp_addr: format!("{id}:1935"),
            capacity,
            active_streams: active,
            state: NodeState::Active,
            started_at: at(0),
            heartbeat_at: at(heartbeat),
            version: "0.1.0".into(),
        }
    }

    fn lease(node: &str, expires: i64) -> Lease {
        Lease {
            stream_id: "s1".into(),
            node_id: node.into(),
            expires_at: at(expires),
            version: 3,
        }
    }

    #[test]
    fn capacity_follows_the_cores_and_is_never_zero() {
        assert_eq!(capacity_for(1), 1);
        assert_eq!(capacity_for(2), 1);
        assert_eq!(capacity_for(4), 2);
        assert_eq!(capacity_for(16), 9);
    }

    #[test]
    fn a_new_stream_goes_to_the_node_with_the_most_free_slots() {
        let nodes = [
            node("a", 4, 3, 100),
            node("b", 4, 1, 100),
            node("c", 2, 0, 100),
        ];
        assert_eq!(
            choose_node(&nodes, None, at(101)).map(|n| n.id.as_str()),
            Some("b")
        );
    }

    #[test]
    fn equal_free_slots_prefer_the_less_loaded_node() {
        let nodes = [node("a", 4, 2, 100), node("b", 2, 0, 100)];
        assert_eq!(
            choose_node(&nodes, None, at(101)).map(|n| n.id.as_str()),
            Some("b")
        );
    }

    #[test]
    fn full_draining_and_silent_nodes_are_never_chosen() {
        let mut draining = node("d", 8, 0, 100);
        draining.state = NodeState::Draining;
        let nodes = [node("full", 2, 2, 100), draining, node("dead", 8, 0, 80)];
        assert_eq!(choose_node(&nodes, None, at(100)), None);
        assert_eq!(nodes[1].free(), 0);
        assert!(!nodes[2].is_alive(at(100)));
        assert!(nodes[2].is_alive(at(95)));
    }

    #[test]
    fn a_leased_stream_goes_back_to_its_holder_even_when_full() {
        let nodes = [node("a", 1, 1, 100), node("b", 4, 0, 100)];
        let held = lease("a", 110);
        assert_eq!(
            choose_node(&nodes, Some(&held), at(101)).map(|n| n.id.as_str()),
            Some("a")
        );
    }

    #[test]
    fn an_expired_lease_or_a_dead_holder_frees_the_stream_for_another_node() {
        let nodes = [node("a", 4, 0, 70), node("b", 4, 1, 100)];
        assert_eq!(
            choose_node(&nodes, Some(&lease("a", 110)), at(101)).map(|n| n.id.as_str()),
            Some("b"),
            "holder's heartbeat is stale"
        );
        let nodes = [node("a", 4, 0, 100), node("b", 4, 1, 100)];
        assert_eq!(
            choose_node(&nodes, Some(&lease("b", 99)), at(101)).map(|n| n.id.as_str()),
            Some("a"),
            "lease expired: most free slots wins"
        );
    }

    #[test]
    fn records_serialise_in_camel_case_with_millisecond_times() {
        let json = serde_json::to_value(node("a", 2, 1, 5)).expect("serialises");
        assert_eq!(json["privateUrl"], "http://a:8889");
        assert_eq!(json["activeStreams"], 1);
        assert_eq!(json["state"], "active");
        assert_eq!(json["heartbeatAt"], "2027-01-15T08:00:05.000Z");
    }
}
