//! The ingest fleet against moto: the registry and stream leases through the DynamoDB
//! adapter (this file), and several real `rill-ingest` processes sharing streams
//! (`fleet_nodes` below).
//!
//! What moto cannot show: two conditional writes racing inside DynamoDB (moto evaluates
//! conditions without a lock). The conditions themselves are exercised here one write at a
//! time; their atomicity is DynamoDB's.

use std::time::Duration;

use rill_core::fleet::{FleetStore, LEASE_TTL, LeaseError, NodeRecord, NodeState};
use rill_core::time;
use rill_tests::Stack;

fn record(id: &str, capacity: u32) -> NodeRecord {
    let now = time::now();
    NodeRecord {
        id: id.into(),
        public_ip: Some("198.51.100.4".into()),
        private_url: format!("http://127.0.0.1:1/{id}"),
        rtmp_addr: "127.0.0.1:1935".into(),
        capacity,
        active_streams: 0,
        state: NodeState::Active,
        started_at: now,
        heartbeat_at: now,
        version: "test".into(),
    }
}

#[tokio::test]
async fn nodes_register_heartbeat_and_leave_the_registry() {
    let stack = Stack::start();
    let store = stack.store().await;
    store.put_node(&record("n1", 2)).await.expect("register");
    let mut n2 = record("n2", 4);
    store.put_node(&n2).await.expect("register");
    n2.active_streams = 3;
    n2.state = NodeState::Draining;
    store.put_node(&n2).await.expect("heartbeat");

    let mut nodes = store.nodes().await.expect("list");
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!(nodes[1], n2, "the latest heartbeat wins");

    store.remove_node("n1").await.expect("remove");
    let ids: Vec<String> = store
        .nodes()
        .await
        .expect("list")
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, ["n2"]);
}

#[tokio::test]
async fn a_stream_has_one_lease_holder_until_release_or_expiry() {
    let stack = Stack::start();
    let store = stack.store().await;
    let now = time::now();
    let a = store
        .acquire_lease("s1", "node-a", LEASE_TTL, now)
        .await
        .expect("free stream: taken");
    assert_eq!((a.node_id.as_str(), a.version), ("node-a", 1));

    match store.acquire_lease("s1", "node-b", LEASE_TTL, now).await {
        Err(LeaseError::Held {
            node_id,
            expires_at,
        }) => {
            assert_eq!(node_id, "node-a");
            assert_eq!(expires_at, a.expires_at);
        }
        other => panic!("a held lease must be refused, got {other:?}"),
    }
    let again = store
        .acquire_lease("s1", "node-a", LEASE_TTL, now)
        .await
        .expect("the holder may take its own lease again");

    let renewed = store
        .renew_lease(&again, LEASE_TTL, now + chrono::Duration::seconds(5))
        .await
        .expect("holder renews");
    assert_eq!(renewed.version, again.version + 1);
    assert!(renewed.expires_at > again.expires_at);
    assert!(
        matches!(
            store.renew_lease(&again, LEASE_TTL, now).await,
            Err(LeaseError::Lost)
        ),
        "a renewal on an old version is refused"
    );

    // Node A stops renewing: once the expiry passes, B takes over; A can neither renew nor
    // release B's lease.
    let later = renewed.expires_at + chrono::Duration::milliseconds(1);
    let b = store
        .acquire_lease("s1", "node-b", LEASE_TTL, later)
        .await
        .expect("expired lease: taken over");
    assert_eq!(b.node_id, "node-b");
    assert!(b.version > renewed.version);
    assert!(matches!(
        store.renew_lease(&renewed, LEASE_TTL, later).await,
        Err(LeaseError::Lost)
    ));
    store
        .release_lease(&renewed)
        .await
        .expect("a stale release is a no-op");
    assert_eq!(store.lease("s1").await.expect("read"), Some(b.clone()));

    store.release_lease(&b).await.expect("holder releases");
    assert_eq!(store.lease("s1").await.expect("read"), None);
    let c = store
        .acquire_lease("s1", "node-c", Duration::from_secs(20), later)
        .await
        .expect("released: free again");
    assert_eq!(c.node_id, "node-c");
}
