//! The node's membership in the ingest fleet (`rill_core::fleet`): its registry entry,
//! the leases of the streams it carries, capacity, drain, and the platform hooks (ECS
//! scale-in protection, the utilisation metric) behind [`NodeHost`].
//!
//! Invariants:
//! - a stream's media is accepted only after [`Membership::claim`] took its lease; a lease
//!   held elsewhere, a full node or a draining one refuses the publish before any media;
//! - [`Membership::tick`] (every [`rill_core::fleet::HEARTBEAT_EVERY`]) renews every held lease and reports
//!   the streams whose lease is lost, or whose expiry passed without a successful renewal
//!   (storage unreachable): the node must stop writing them, another node may own them;
//! - a released lease ([`Membership::release`]) is deleted only if it is still ours.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_core::fleet::{FleetStore, LEASE_TTL, Lease, LeaseError, NodeHost, NodeRecord, NodeState};
use rill_core::time::{self, Timestamp};

use crate::publish::Refusal;

/// The fleet settings of a node (`NODE_ID`, `NODE_CAPACITY`, `NODE_PRIVATE_URL`,
/// `DRAIN_SECONDS`, read by [`crate::config`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetConfig {
    /// Unset: the ECS task id on ECS, otherwise generated per process.
    pub node_id: Option<String>,
    /// Unset: [`rill_core::fleet::capacity_for`] the machine's cores.
    pub capacity: Option<u32>,
    /// Unset: `http://{private IP on ECS, else the HTTP listener's address}`.
    pub private_url: Option<String>,
    /// How long SIGTERM waits for streams to end on their own before finalising them.
    pub drain: Duration,
}

/// Who the node is, as the registry shows it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub public_ip: Option<String>,
    pub private_url: String,
    pub rtmp_addr: SocketAddr,
}

/// The HTTP base other parts of the fleet reach the node at when nothing better is known:
/// the listener's address, with a wildcard replaced by loopback.
pub fn default_private_url(http: SocketAddr, private_ip: Option<std::net::IpAddr>) -> String {
    let ip = match (private_ip, http.ip()) {
        (Some(ip), _) => ip,
        (None, ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        (None, ip) => ip,
    };
    format!("http://{}", SocketAddr::new(ip, http.port()))
}

/// A node id for a process that is given none (not on ECS): unique per process.
pub fn generated_id() -> String {
    format!("node-{}", ulid::Ulid::new().to_string().to_lowercase())
}

struct Inner {
    identity: Identity,
    capacity: u32,
    store: Arc<dyn FleetStore>,
    host: Arc<dyn NodeHost>,
    started_at: Timestamp,
    draining: AtomicBool,
    leases: Mutex<HashMap<String, Lease>>,
}

/// The node's side of the fleet (cheap to clone).
#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("id", &self.inner.identity.id)
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl Membership {
    pub fn new(
        identity: Identity,
        capacity: u32,
        store: Arc<dyn FleetStore>,
        host: Arc<dyn NodeHost>,
    ) -> Self {
        Membership {
            inner: Arc::new(Inner {
                identity,
                capacity: capacity.max(1),
                store,
                host,
                started_at: time::now(),
                draining: AtomicBool::new(false),
                leases: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.identity.id
    }

    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.inner
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `stream_id`'s lease for a new pipeline on this node, which carries `carried`
    /// streams now.
    pub async fn claim(&self, stream_id: &str, carried: usize) -> Result<(), Refusal> {
        if self.is_draining() {
            tracing::info!(stream_id, "publish refused: node draining");
            return Err(Refusal::NodeFull);
        }
        if carried >= self.inner.capacity as usize {
            tracing::info!(
                stream_id,
                capacity = self.inner.capacity,
                "publish refused: node at capacity"
            );
            return Err(Refusal::NodeFull);
        }
        let taken = self
            .inner
            .store
            .acquire_lease(stream_id, self.id(), LEASE_TTL, time::now())
            .await;
        match taken {
            Ok(lease) => {
                self.leases().insert(stream_id.to_owned(), lease);
                Ok(())
            }
            Err(LeaseError::Held { node_id, .. }) => {
                tracing::info!(stream_id, holder = %node_id, "publish refused: the stream is published on another node");
                Err(Refusal::HeldElsewhere)
            }
            Err(LeaseError::Lost) => Err(Refusal::Unavailable),
            Err(LeaseError::Store(e)) => {
                tracing::error!(stream_id, error = %e, "lease store failed");
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Gives the stream's lease back (its pipeline finished).
    pub async fn release(&self, stream_id: &str) {
        let lease = self.leases().remove(stream_id);
        if let Some(lease) = lease
            && let Err(e) = self.inner.store.release_lease(&lease).await
        {
            // It expires on its own within LEASE_TTL.
            tracing::warn!(stream_id, error = %e, "lease not released");
        }
    }

    /// Forgets a lease without a write (it is lost already).
    fn forget(&self, stream_id: &str) {
        self.leases().remove(stream_id);
    }

    /// Marks the node draining: no new publishes, and the registry says so at once.
    pub async fn drain(&self, active: u32) {
        self.inner.draining.store(true, Ordering::Relaxed);
        self.heartbeat(active).await;
    }

    /// The registry entry as of now.
    pub fn record(&self, active: u32) -> NodeRecord {
        let i = &self.inner.identity;
        NodeRecord {
            id: i.id.clone(),
            public_ip: i.public_ip.clone(),
            private_url: i.private_url.clone(),
            rtmp_addr: i.rtmp_addr.to_string(),
            capacity: self.inner.capacity,
            active_streams: active,
            state: if self.is_draining() {
                NodeState::Draining
            } else {
                NodeState::Active
            },
            started_at: self.inner.started_at,
            heartbeat_at: time::now(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    async fn heartbeat(&self, active: u32) {
        if let Err(e) = self.inner.store.put_node(&self.record(active)).await {
            tracing::warn!(error = %e, "registry heartbeat failed");
        }
        if let Err(e) = self.inner.host.protect(active > 0).await {
            tracing::warn!(error = %e, "scale-in protection not updated");
        }
        if let Err(e) = self
            .inner
            .host
            .report_utilisation(active, self.inner.capacity)
            .await
        {
            tracing::warn!(error = %e, "utilisation metric not published");
        }
    }

    /// One heartbeat: renews every lease, rewrites the registry entry. Returns the streams
    /// this node must stop writing (lease lost or expired unrenewed).
    pub async fn tick(&self, active: u32) -> Vec<String> {
        let held: Vec<Lease> = self.leases().values().cloned().collect();
        let mut lost = Vec::new();
        for lease in held {
            let now = time::now();
            match self.inner.store.renew_lease(&lease, LEASE_TTL, now).await {
                Ok(renewed) => {
                    // Released meanwhile (the pipeline ended): do not resurrect it.
                    let mut leases = self.leases();
                    if leases.contains_key(&lease.stream_id) {
                        leases.insert(lease.stream_id.clone(), renewed);
                    }
                }
                Err(LeaseError::Lost) | Err(LeaseError::Held { .. }) => {
                    tracing::error!(stream_id = %lease.stream_id, "lease lost to another node");
                    lost.push(lease.stream_id.clone());
                }
                Err(LeaseError::Store(e)) if lease.is_expired(now) => {
                    tracing::error!(stream_id = %lease.stream_id, error = %e, "lease expired without renewal");
                    lost.push(lease.stream_id.clone());
                }
                Err(LeaseError::Store(e)) => {
                    tracing::warn!(stream_id = %lease.stream_id, error = %e, "lease renewal failed; retrying");
                }
            }
        }
        for id in &lost {
            self.forget(id);
        }
        self.heartbeat(active).await;
        lost
    }

    /// Leaves the registry (clean shutdown, after every stream was finalised) and drops
    /// scale-in protection.
    pub async fn leave(&self) {
        if let Err(e) = self.inner.store.remove_node(self.id()).await {
            tracing::warn!(error = %e, "registry entry not removed; it goes stale");
        }
        let _ = self.inner.host.protect(false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::fleet::HEARTBEAT_EVERY;

    #[test]
    fn the_private_url_never_names_a_wildcard_address() {
        let any: SocketAddr = "0.0.0.0:8889".parse().expect("addr");
        assert_eq!(default_private_url(any, None), "http://127.0.0.1:8889");
        let ecs = "10.0.1.23".parse().ok();
        assert_eq!(default_private_url(any, ecs), "http://10.0.1.23:8889");
        let local: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(default_private_url(local, None), "http://127.0.0.1:4000");
    }

    #[test]
    fn generated_ids_differ_per_call() {
        assert_ne!(generated_id(), generated_id());
        assert!(generated_id().starts_with("node-"));
    }

    #[test]
    fn the_heartbeat_interval_renews_well_inside_the_lease() {
        assert!(HEARTBEAT_EVERY * 3 < LEASE_TTL);
    }
}
