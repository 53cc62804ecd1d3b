//! The ingest fleet against the harness's DynamoDB (DynamoDB Local): the registry and
//! stream leases through the DynamoDB adapter (this file), and several real `rill-ingest`
//! processes sharing streams (`fleet_nodes` below).
//!
//! The conditions are exercised here one write at a time; their atomicity under racing
//! writers is DynamoDB's (DynamoDB Local applies conditional writes atomically too, and so
//! does moto under `RILL_DYNAMODB=moto` through `scripts/moto_server.py`'s lock).

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

mod fleet_nodes {
    //! Two real `rill-ingest` processes on one stack (one table, one gateway), publishers
    //! are the ffmpeg CLI over RTMP.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use rill_core::fleet::{FleetStore, NodeState};
    use rill_tests::{IngestNode, RtmpPublisher, Stack, User, wait_for};
    use serde_json::json;

    async fn status(stack: &Stack, id: &str) -> String {
        User::anonymous()
            .get(stack, &format!("/api/streams/{id}"))
            .await
            .body["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn wait_live(stack: &Stack, id: &str) {
        wait_for("the stream to go live", Duration::from_secs(60), || async {
            status(stack, id).await == "live"
        })
        .await;
    }

    /// Every object under the stream's prefix with its ETag.
    async fn objects(stack: &Stack, id: &str) -> BTreeMap<String, String> {
        let out = stack
            .s3()
            .await
            .list_objects_v2()
            .bucket(&stack.bucket)
            .prefix(format!("live/{id}/"))
            .send()
            .await
            .expect("list objects");
        out.contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_owned(),
                    o.e_tag().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn uris(playlist: &str) -> Vec<&str> {
        playlist
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    }

    async fn holder(stack: &Stack, id: &str) -> Option<String> {
        let store = stack.store().await;
        store
            .lease(id)
            .await
            .expect("read lease")
            .map(|l| l.node_id)
    }

    #[tokio::test]
    async fn one_node_per_stream_and_a_killed_nodes_stream_continues_on_the_other() {
        let stack = Stack::start();
        let mut a = IngestNode::start(&stack, &[("NODE_ID", "node-a")]);
        let b = IngestNode::start(&stack, &[("NODE_ID", "node-b")]);
        let owner = User::named("owner");
        let (id, key) = owner
            .create_stream(&stack, json!({"channelId":"fleet","title":"Failover"}))
            .await;
        let mut first = RtmpPublisher::start(&a.rtmp, &key, "640x360", 120);
        wait_live(&stack, &id).await;
        assert_eq!(holder(&stack, &id).await.as_deref(), Some("node-a"));

        // The same stream on the other node at the same time: refused before any media.
        let mut second = RtmpPublisher::start(&b.rtmp, &key, "640x360", 30);
        assert!(
            !second.still_running_after(Duration::from_secs(5)),
            "node-b must refuse a stream node-a holds"
        );
        assert_eq!(holder(&stack, &id).await.as_deref(), Some("node-a"));

        let playlist = format!("/hls/live/{id}/360p/index.m3u8");
        wait_for("three segments", Duration::from_secs(30), || async {
            stack
                .text(&playlist)
                .await
                .is_some_and(|p| p.matches("#EXTINF").count() >= 3)
        })
        .await;
        let before_objects = objects(&stack, &id).await;
        let before = stack.text(&playlist).await.expect("playlist");

        // node-a dies without a word; its publisher comes back through "the load balancer",
        // i.e. node-b, and is accepted once node-a's lease has expired.
        a.kill();
        let killed = std::time::Instant::now();
        first.stop();
        let mut back = None;
        wait_for("node-b to take the stream", Duration::from_secs(45), || {
            let p = RtmpPublisher::start(&b.rtmp, &key, "640x360", 120);
            let mut p = p;
            let running = p.still_running_after(Duration::from_secs(3));
            if running {
                back = Some(p);
            }
            async move { running }
        })
        .await;
        let accepted = killed.elapsed();
        // The publish is accepted before the lease is written back (slow on a loaded
        // machine): the lease names node-b shortly after.
        wait_for("node-b in the lease", Duration::from_secs(15), || async {
            holder(&stack, &id).await.as_deref() == Some("node-b")
        })
        .await;
        assert_eq!(status(&stack, &id).await, "live", "the stream never ended");

        wait_for("segments from node-b", Duration::from_secs(45), || async {
            stack.text(&playlist).await.is_some_and(|p| {
                p.contains("#EXT-X-DISCONTINUITY")
                    && p.matches("#EXTINF").count() >= uris(&before).len() + 3
            })
        })
        .await;
        // What a failover costs, for the notes (not asserted: timing is the machine's).
        eprintln!(
            "failover: publish accepted on node-b {:.1} s after node-a was killed; three new segments listed {:.1} s after",
            accepted.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        );
        let after = stack.text(&playlist).await.expect("playlist");
        assert!(
            uris(&after).starts_with(&uris(&before)),
            "node-a's segments stay listed, in order:\n{before}\n---\n{after}"
        );
        assert!(after.contains("#EXT-X-MAP:URI=\"init-1.mp4\""), "{after}");
        let times: Vec<_> = after
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("PDT"))
            .collect();
        assert!(
            times.windows(2).all(|w| w[1] > w[0]),
            "PDT goes back:\n{after}"
        );
        let sequences: Vec<&str> = after
            .lines()
            .filter(|l| {
                l.starts_with("#EXT-X-MEDIA-SEQUENCE") || l.starts_with("#EXT-X-TARGETDURATION")
            })
            .collect();
        assert_eq!(
            sequences,
            before
                .lines()
                .filter(|l| l.starts_with("#EXT-X-MEDIA-SEQUENCE")
                    || l.starts_with("#EXT-X-TARGETDURATION"))
                .collect::<Vec<_>>(),
            "media sequence and target duration are unchanged"
        );

        // Nothing node-a stored was overwritten (playlists and the thumbnail are rewritten
        // by design; segments and inits are immutable).
        let after_objects = objects(&stack, &id).await;
        for (key, etag) in &before_objects {
            if key.ends_with(".m3u8") || key.ends_with(".jpg") {
                continue;
            }
            assert_eq!(after_objects.get(key), Some(etag), "{key} was overwritten");
        }
        drop(back);
        drop(b);
    }

    #[tokio::test]
    async fn a_full_node_refuses_the_other_accepts_and_a_draining_node_keeps_its_stream() {
        let stack = Stack::start();
        let mut a = IngestNode::start(
            &stack,
            &[
                ("NODE_ID", "node-a"),
                ("NODE_CAPACITY", "1"),
                ("DRAIN_SECONDS", "60"),
                ("RECONNECT_WINDOW_SECONDS", "2"),
            ],
        );
        let b = IngestNode::start(&stack, &[("NODE_ID", "node-b"), ("NODE_CAPACITY", "2")]);
        let owner = User::named("owner");
        let mut streams = Vec::new();
        for title in ["One", "Two", "Three"] {
            streams.push(
                owner
                    .create_stream(&stack, json!({"channelId":"fleet","title":title}))
                    .await,
            );
        }
        let [(s1, k1), (s2, k2), (s3, k3)] = <[_; 3]>::try_from(streams).expect("three");

        let mut p1 = RtmpPublisher::start(&a.rtmp, &k1, "640x360", 120);
        wait_live(&stack, &s1).await;

        // node-a carries one stream, its capacity: a second is refused there...
        let mut refused = RtmpPublisher::start(&a.rtmp, &k2, "640x360", 30);
        assert!(
            !refused.still_running_after(Duration::from_secs(5)),
            "node-a is full"
        );
        assert_eq!(holder(&stack, &s2).await, None, "a refusal takes no lease");
        // ...and accepted on node-b.
        let _p2 = RtmpPublisher::start(&b.rtmp, &k2, "640x360", 120);
        wait_live(&stack, &s2).await;
        assert_eq!(holder(&stack, &s2).await.as_deref(), Some("node-b"));

        let store = stack.store().await;
        let registry = store.nodes().await.expect("registry");
        let entry = |id: &str| {
            registry
                .iter()
                .find(|n| n.id == id)
                .cloned()
                .expect("registered")
        };
        assert_eq!(
            (entry("node-a").capacity, entry("node-a").active_streams),
            (1, 1)
        );
        assert_eq!(entry("node-b").capacity, 2);

        // SIGTERM: node-a drains. The registry says so at once, a new publish is refused,
        // and the stream it carries keeps producing segments.
        let playlist = format!("/hls/live/{s1}/360p/index.m3u8");
        a.signal_term();
        wait_for(
            "node-a draining in the registry",
            Duration::from_secs(10),
            || async {
                store
                    .nodes()
                    .await
                    .expect("registry")
                    .iter()
                    .any(|n| n.id == "node-a" && n.state == NodeState::Draining)
            },
        )
        .await;
        let segments = stack
            .text(&playlist)
            .await
            .expect("playlist")
            .matches("#EXTINF")
            .count();
        let mut late = RtmpPublisher::start(&a.rtmp, &k3, "640x360", 30);
        assert!(
            !late.still_running_after(Duration::from_secs(5)),
            "a draining node takes no new stream"
        );
        wait_for(
            "segments while draining",
            Duration::from_secs(30),
            || async {
                stack.text(&playlist).await.is_some_and(|p| {
                    p.matches("#EXTINF").count() >= segments + 3 && !p.contains("#EXT-X-ENDLIST")
                })
            },
        )
        .await;
        assert_eq!(status(&stack, &s3).await, "preparing");

        // The publisher leaves: the stream ends after its reconnect window, node-a exits
        // well before the drain limit, its lease released and its registry entry gone.
        p1.stop();
        let exit = a
            .wait_exit(Duration::from_secs(40))
            .expect("node-a exits once drained");
        assert!(exit.success());
        assert!(
            stack
                .text(&playlist)
                .await
                .expect("playlist")
                .contains("#EXT-X-ENDLIST")
        );
        assert_eq!(status(&stack, &s1).await, "ended");
        assert_eq!(holder(&stack, &s1).await, None);
        let ids: Vec<String> = store
            .nodes()
            .await
            .expect("registry")
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, ["node-b"]);
    }
}

mod orphan_sweep {
    use std::time::Duration;

    use rill_tests::{IngestNode, RtmpPublisher, Stack, User, wait_for};
    use serde_json::json;

    #[tokio::test]
    async fn a_stream_whose_node_died_and_publisher_never_returned_is_ended_by_another_node() {
        let stack = Stack::start();
        let mut a = IngestNode::start(&stack, &[("NODE_ID", "node-a")]);
        let _b = IngestNode::start(
            &stack,
            &[("NODE_ID", "node-b"), ("RECONNECT_WINDOW_SECONDS", "1")],
        );
        let owner = User::named("owner");
        let (id, key) = owner
            .create_stream(&stack, json!({"channelId":"fleet","title":"Orphan"}))
            .await;
        let path = format!("/api/streams/{id}");
        let _publisher = RtmpPublisher::start(&a.rtmp, &key, "640x360", 120);
        wait_for("live", Duration::from_secs(60), || async {
            User::anonymous().get(&stack, &path).await.body["status"] == "live"
        })
        .await;
        let playlist = format!("/hls/live/{id}/360p/index.m3u8");
        wait_for("a listed segment", Duration::from_secs(30), || async {
            stack
                .text(&playlist)
                .await
                .is_some_and(|p| p.contains("#EXTINF"))
        })
        .await;
        a.kill();

        // Lease expiry (<= 20 s) + node-b's reconnect window + one sweep period (30 s).
        wait_for(
            "the orphan to be ended",
            Duration::from_secs(90),
            || async { User::anonymous().get(&stack, &path).await.body["status"] == "ended" },
        )
        .await;
        let text = stack.text(&playlist).await.expect("playlist");
        assert!(
            text.ends_with("#EXT-X-ENDLIST\n"),
            "the recording is closed:\n{text}"
        );
        let store = stack.store().await;
        use rill_core::fleet::FleetStore;
        assert_eq!(
            store.lease(&id).await.expect("read"),
            None,
            "the sweeper released it"
        );
    }
}
