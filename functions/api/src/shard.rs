//! Sharded fan-out: an audience larger than [`SHARD_SIZE`] connections is split into
//! shards; all but the first go to shard workers (`events-fanout-shard`, through the
//! [`ShardDispatcher`] port: asynchronous Lambda invocations on AWS, the gateway's Invoke
//! API locally) in parallel, and the first is delivered here meanwhile.
//!
//! Invariants:
//! - nothing is lost: a shard whose dispatch fails is delivered in this process (logged);
//! - every shard carries all the batch's frames, so each connection gets every frame once,
//!   in order, from exactly one worker;
//! - with no dispatcher (`FANOUT_SHARD_FUNCTION` unset) or an audience of at most one
//!   shard, everything is delivered in-process, as before sharding existed.
//!
//! Why [`SHARD_SIZE`] = 1,000: one process posts [`FANOUT_CONCURRENCY`] (128) frames at a
//! time and a `PostToConnection` takes ~10-30 ms on AWS, so a shard of N connections takes
//! about N / 128 x 20 ms; N = 1,000 is ~160 ms per frame, which keeps the last viewer of a
//! shard within the 200 ms chat target while an asynchronous invocation (~20-50 ms
//! queueing, more on a cold start) stays a small part of it. 10,000 viewers are 10 shards:
//! 9 invokes and one in-process. Measured locally (bench-realtime `--shard-size`, 1,000
//! viewers on 2 cores, where posts are CPU-bound and more processes add no CPU): 1,000:
//! chat p50 / p99 91 / 297 ms, 250: 103 / 375 ms. `FANOUT_SHARD_SIZE` overrides it (tests
//! use 4).

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use rill_core::event::Event;
use rill_core::fanout::{FanoutShard, ShardDispatcher, ShardReport};

use crate::broadcast::{Delivery, FANOUT_CONCURRENCY, deliver_frames};
use crate::{ApiError, App};

/// Connections per shard (see the module docs for the calculation).
pub const SHARD_SIZE: usize = 1_000;
/// Shard dispatches (invoke calls) in flight per fan-out: 10,000 viewers need 9.
pub const DISPATCH_CONCURRENCY: usize = 16;

// The calculation above assumes this bound.
const _: () = assert!(FANOUT_CONCURRENCY == 128);

/// `FANOUT_SHARD_SIZE` when it is a positive number, else [`SHARD_SIZE`].
pub fn shard_size_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> usize {
    lookup("FANOUT_SHARD_SIZE")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(SHARD_SIZE)
}

/// The first shard (delivered by the caller) and the rest (for workers). An audience of
/// at most `size` is one shard.
pub fn split(ids: &[String], size: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let size = size.max(1);
    let mut chunks = ids.chunks(size).map(<[String]>::to_vec);
    let first = chunks.next().unwrap_or_default();
    (first, chunks.collect())
}

/// Delivers `frames` to `ids`: in-process through `local` up to one shard, else the first
/// shard through `local` while the others are dispatched; a shard whose dispatch fails goes
/// through `local` too. Generic over `local` so the rule is tested without AWS or a store.
pub async fn spread<F, Fut>(
    dispatcher: Option<&dyn ShardDispatcher>,
    size: usize,
    stream_id: &str,
    frames: &[serde_json::Value],
    ids: &[String],
    local: F,
) -> Delivery
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Delivery>,
{
    let Some(dispatcher) = dispatcher.filter(|_| ids.len() > size.max(1)) else {
        return local(ids.to_vec()).await;
    };
    let (first, rest) = split(ids, size);
    let dispatches = futures_util::stream::iter(rest)
        .map(|connection_ids| async move {
            let shard = FanoutShard {
                stream_id: stream_id.to_owned(),
                frames: frames.to_vec(),
                connection_ids,
            };
            let result = dispatcher.dispatch(shard.clone()).await;
            (shard.connection_ids, result)
        })
        .buffer_unordered(DISPATCH_CONCURRENCY)
        .collect::<Vec<_>>();
    let (mut total, dispatched) = futures_util::join!(local(first), dispatches);
    for (connection_ids, result) in dispatched {
        match result {
            Ok(()) => total.sharded += connection_ids.len(),
            Err(e) => {
                tracing::warn!(error = %e, stream_id, connections = connection_ids.len(),
                    "shard dispatch failed: delivering it in-process");
                total += local(connection_ids).await;
            }
        }
    }
    total
}

/// The fan-out of a batch of events to a stream's connections, sharded when it is large
/// (used by `events-fanout` per stream per batch, and by `emit`).
pub async fn fan_out(
    app: &App,
    stream_id: &str,
    events: &[Event],
    ids: &[String],
) -> Result<Delivery, ApiError> {
    let values = events
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let frames = values
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let frames = &frames;
    let d = spread(
        app.shards.as_deref(),
        app.shard_size,
        stream_id,
        &values,
        ids,
        |shard| async move { deliver_frames(app, stream_id, frames, shard).await },
    )
    .await;
    tracing::debug!(
        stream_id,
        frames = events.len(),
        connections = ids.len(),
        delivered = d.delivered,
        pruned = d.pruned,
        failed = d.failed,
        sharded = d.sharded,
        "fanned out"
    );
    Ok(d)
}

/// `events-fanout-shard`: delivers every frame of the shard to every connection of it, with
/// the in-process rules (bounded concurrency, per-post timeout, 410 prunes). Failed posts
/// are counted, not raised: a retried invocation would send the delivered frames again.
pub async fn handle(app: Arc<App>, shard: FanoutShard) -> Result<ShardReport, ApiError> {
    let frames = shard
        .frames
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let connections = shard.connection_ids.len();
    let started = std::time::Instant::now();
    let d = deliver_frames(&app, &shard.stream_id, &frames, shard.connection_ids).await;
    // The figure FANOUT_SHARD_SIZE is tuned from: how long one shard takes here.
    tracing::info!(stream_id = %shard.stream_id, frames = frames.len(), connections,
        delivered = d.delivered, pruned = d.pruned, failed = d.failed,
        duration_ms = started.elapsed().as_millis(), "shard delivered");
    Ok(ShardReport {
        delivered: d.delivered,
        pruned: d.pruned,
        failed: d.failed,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rill_core::fanout::DispatchError;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        shards: Mutex<Vec<FanoutShard>>,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl ShardDispatcher for Recorder {
        async fn dispatch(&self, shard: FanoutShard) -> Result<(), DispatchError> {
            if self.fail {
                return Err(DispatchError::Failed("throttled".into()));
            }
            self.shards.lock().unwrap().push(shard);
            Ok(())
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Runs [`spread`] with a local delivery that records the ids it was given.
    async fn run(
        dispatcher: Option<&dyn ShardDispatcher>,
        size: usize,
        audience: &[String],
    ) -> (Delivery, Vec<Vec<String>>) {
        let local = Mutex::new(Vec::new());
        let frames = [serde_json::json!({"type": "stream:chat-message"})];
        let d = spread(dispatcher, size, "s1", &frames, audience, |shard| {
            let n = shard.len();
            local.lock().unwrap().push(shard);
            async move {
                Delivery {
                    delivered: n,
                    ..Delivery::default()
                }
            }
        })
        .await;
        (d, local.into_inner().unwrap())
    }

    #[tokio::test]
    async fn an_audience_at_the_shard_size_is_delivered_in_process() {
        let r = Recorder::default();
        let (d, local) = run(Some(&r), 4, &ids(4)).await;
        assert_eq!(local, vec![ids(4)]);
        assert!(r.shards.lock().unwrap().is_empty());
        assert_eq!((d.delivered, d.sharded), (4, 0));
    }

    #[tokio::test]
    async fn a_larger_audience_keeps_the_first_shard_and_dispatches_the_rest() {
        let r = Recorder::default();
        let audience = ids(10);
        let (d, local) = run(Some(&r), 4, &audience).await;
        assert_eq!(local, vec![audience[..4].to_vec()]);
        let mut shards = r.shards.lock().unwrap().clone();
        shards.sort_by_key(|s| s.connection_ids[0].clone());
        let dispatched: Vec<Vec<String>> =
            shards.iter().map(|s| s.connection_ids.clone()).collect();
        assert_eq!(
            dispatched,
            vec![audience[4..8].to_vec(), audience[8..].to_vec()]
        );
        assert!(
            shards
                .iter()
                .all(|s| s.stream_id == "s1" && s.frames.len() == 1)
        );
        assert_eq!((d.delivered, d.sharded), (4, 6));
    }

    #[tokio::test]
    async fn a_failed_dispatch_is_delivered_in_process() {
        let r = Recorder {
            fail: true,
            ..Recorder::default()
        };
        let audience = ids(10);
        let (d, local) = run(Some(&r), 4, &audience).await;
        let mut got: Vec<String> = local.into_iter().flatten().collect();
        got.sort();
        let mut want = audience.clone();
        want.sort();
        assert_eq!(got, want, "every connection, once");
        assert_eq!((d.delivered, d.sharded), (10, 0));
    }

    #[tokio::test]
    async fn without_a_dispatcher_everything_stays_in_process() {
        let (d, local) = run(None, 4, &ids(10)).await;
        assert_eq!(local, vec![ids(10)]);
        assert_eq!(d.delivered, 10);
    }

    #[test]
    fn the_shard_size_comes_from_the_environment_when_positive() {
        let env = |v: &'static str| move |n: &str| (n == "FANOUT_SHARD_SIZE").then(|| v.to_owned());
        assert_eq!(shard_size_from_lookup(env("4")), 4);
        assert_eq!(shard_size_from_lookup(env("0")), SHARD_SIZE);
        assert_eq!(shard_size_from_lookup(env("lots")), SHARD_SIZE);
        assert_eq!(shard_size_from_lookup(|_| None), SHARD_SIZE);
    }
}
