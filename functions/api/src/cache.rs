//! What a warm instance may remember between requests, so the realtime paths stay within
//! their storage-call budgets (docs/architecture.md section 6).
//!
//! Staleness, stated once here:
//! - **Connections** are not cached: a socket's events carry who and where in the
//!   authorizer's context (`ws_authorizer`), so no route reads them.
//! - **Streams** and **standings** (ban, moderator, membership): kept
//!   [`SHORT`] (2 s). A status change, a settings change or a ban reaches the socket
//!   functions of an instance within 2 s; writes still go through the table's conditions
//!   (a chat message on an ended stream is refused by its transaction).
//! - **Connection lists** of a stream, for the fan-out of socket-born chat and questions:
//!   [`CONNECTION_LISTS`] (1 s), so a busy chat reads the list about once a second. A list
//!   older than that but younger than [`CONNECTION_LISTS_STALE_MAX`] (10 s) is fanned out
//!   to at once while it is re-read, and the newcomers the fresh list names get the event
//!   right after: a message never waits for the read of a 1,000-connection list.
//! - **Webhooks** of a channel (`webhooks-dispatch`): [`SHORT`]; a webhook registered,
//!   changed or disabled is seen by the dispatcher within 2 s (a delivery run reads the
//!   webhook itself, uncached).
//! - **Presence pacing**: when this instance last sent each stream's count, so counts go
//!   out at most once a second per stream (`rill_core::presence`).
//! - **Rate buckets**: the bucket this instance last wrote for a user, so the next spend
//!   is one conditional write; a write by another instance fails the condition and the
//!   bucket is read again (never trusted blindly).
//!
//! Every cache is bounded: past [`MAX_ENTRIES`] it is emptied (a busy instance then
//! re-reads, which is correct, only slower).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rill_core::Stream;
use rill_core::realtime::{Bucket, Standing};

pub const SHORT: Duration = Duration::from_secs(2);
/// A stream's connection list, for fan-outs from socket functions (`broadcast`).
pub const CONNECTION_LISTS: Duration = Duration::from_secs(1);
/// Up to this age a list past [`CONNECTION_LISTS`] is still used, while it is re-read in
/// parallel: those it names get the event at once, newcomers when the read returns.
pub const CONNECTION_LISTS_STALE_MAX: Duration = Duration::from_secs(10);
pub const BUCKETS: Duration = Duration::from_secs(60);
pub const MAX_ENTRIES: usize = 20_000;

/// A map whose entries expire `ttl` after they were put.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// The entry however old, with its age: for callers that may act on a stale value
    /// while they refresh it.
    pub fn get_aged(&self, key: &K) -> Option<(V, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).map(|(at, v)| (v.clone(), at.elapsed()))
    }

    pub fn remove(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The caches of one warm instance.
#[derive(Debug)]
pub struct Caches {
    pub streams: TtlCache<String, Stream>,
    /// By (stream id, user id).
    pub standings: TtlCache<(String, String), Standing>,
    /// By (stream id, user id).
    pub buckets: TtlCache<(String, String), Bucket>,
    /// Open connection ids by stream id.
    pub connection_lists: TtlCache<String, Vec<String>>,
    /// When this instance last sent each stream's viewer count (`events-presence`).
    pub presence: Mutex<rill_core::presence::Pacer>,
    /// A channel's webhooks, by channel id (`webhooks-dispatch`): [`SHORT`].
    pub webhooks: TtlCache<String, Vec<rill_core::webhook::Webhook>>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            streams: TtlCache::new(SHORT),
            standings: TtlCache::new(SHORT),
            buckets: TtlCache::new(BUCKETS),
            connection_lists: TtlCache::new(CONNECTION_LISTS),
            presence: Mutex::default(),
            webhooks: TtlCache::new(SHORT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl_and_the_cache_stays_bounded() {
        let c = TtlCache::new(Duration::from_millis(30));
        c.put(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&1), None);
        for i in 0..MAX_ENTRIES + 5 {
            c.put(i, "x");
        }
        assert!(c.entries.lock().expect("lock").len() <= MAX_ENTRIES);
        c.put(7, "y");
        let (v, age) = c.get_aged(&7).expect("aged");
        assert_eq!(v, "y");
        assert!(age < Duration::from_secs(1));
        c.remove(&7);
        assert_eq!(c.get(&7), None);
    }
}
