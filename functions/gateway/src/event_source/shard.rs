//! One shard of a table stream: read once, delivered to every mapping of the group.
//!
//! On AWS each event source mapping reads every shard on its own. Locally that multiplied
//! DynamoDB Local's `GetRecords` work by the number of mappings (three on Rill's table),
//! on the same single SQLite thread that serves every write; so here the group's
//! [`ShardReader`] reads each page once and hands each record to one [`Consumer`] per
//! mapping. What a function sees is unchanged: each consumer applies its mapping's filter,
//! cuts its own batches (`BatchSize`, window, payload limit) and invokes with its own
//! retries, one batch at a time in shard order, never waiting on another mapping.
//!
//! A consumer that falls behind (a function retrying a failing batch) queues records up
//! to [`QUEUE_RECORDS`]; past that the reader waits for it, so a mapping stuck for longer
//! than that holds the others back (on AWS the stream's 24 h retention is the only limit).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rill_aws::table_stream::{Position, ReadError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::{
    GET_RECORDS_LIMIT, MAX_BATCH_BYTES, Mapping, POLL, Poller, RETRY_BACKOFF_MAX,
    RETRY_BACKOFF_START, ReadingGuard, UNAVAILABLE_RETRY, pause,
};
use crate::pool::Outcome;
use crate::template::StartingPosition;

/// Records a consumer may have queued before the reader waits for it: about a minute and
/// a half of a 1,000-records-a-second stream.
const QUEUE_RECORDS: usize = 100_000;

/// What the reader hands a consumer.
#[derive(Debug)]
enum Message {
    Record {
        record: Value,
        size: usize,
        created_ms: Option<i64>,
    },
    /// The reader's page ended: the shard has nothing more right now (`closed`: ever).
    PageEnd { closed: bool },
}

#[derive(Debug)]
pub(super) struct ShardReader {
    pub(super) poller: Poller,
    pub(super) stream_arn: String,
    pub(super) shard_id: String,
}

impl ShardReader {
    /// Reads the shard to its end (or until stopping), then reports it `done` once every
    /// consumer has delivered all of it.
    pub(super) async fn run(
        mut self,
        position: StartingPosition,
        parent_done: Option<watch::Receiver<bool>>,
        done: watch::Sender<bool>,
    ) {
        // Lambda finishes a parent shard before its children.
        if let Some(mut parent) = parent_done {
            tokio::select! {
                _ = parent.wait_for(|d| *d) => {}
                _ = self.poller.stop.wait_for(|s| *s) => return,
            }
        }
        let initial = match position {
            StartingPosition::Latest => Position::Latest,
            StartingPosition::TrimHorizon => Position::TrimHorizon,
        };
        let Some(mut iterator) = self.iterator(&initial).await else {
            return;
        };
        let mut outlets = Vec::new();
        let mut consumers = Consumers(Vec::new());
        for mapping in &self.poller.mappings {
            let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
            let consumer = Consumer {
                mapping: mapping.clone(),
                poller: self.poller.clone(),
                shard_id: self.shard_id.clone(),
                rx,
            };
            consumers.0.push(tokio::spawn(consumer.run()));
            outlets.push((mapping.clone(), tx, ReadingGuard::new(mapping)));
        }
        let mut last_sequence: Option<String> = None;
        let mut warned = false;
        let closed = loop {
            if *self.poller.stop.borrow() {
                break false;
            }
            let response = self
                .poller
                .stream
                .records(&self.stream_arn, &iterator, GET_RECORDS_LIMIT)
                .await;
            let (records, next) = match response {
                Ok(page) => {
                    warned = false;
                    (page.records, page.next_iterator)
                }
                Err(e) => {
                    let renewed = match e {
                        ReadError::ExpiredIterator => match last_sequence.clone() {
                            Some(seq) => self.iterator(&Position::After(seq)).await,
                            None => self.iterator(&initial).await,
                        },
                        ReadError::Trimmed => self.iterator(&Position::TrimHorizon).await,
                        ReadError::ShardGone => {
                            info!(mappings = %self.poller.label(), shard = %self.shard_id, "shard is gone");
                            break false;
                        }
                        ReadError::Other(error) => {
                            if !warned {
                                warn!(mappings = %self.poller.label(), shard = %self.shard_id,
                                      %error, "GetRecords failed; retrying");
                                warned = true;
                            }
                            if !pause(&mut self.poller.stop, UNAVAILABLE_RETRY).await {
                                break false;
                            }
                            continue;
                        }
                    };
                    match renewed {
                        Some(it) => iterator = it,
                        None => break false,
                    }
                    continue;
                }
            };
            let got = records.len();
            for record in records {
                if let Some(seq) = record.sequence_number {
                    last_sequence = Some(seq);
                }
                let size = record.lambda.to_string().len();
                for (mapping, tx, _) in &outlets {
                    if !mapping.source.filters.pass(&record.lambda) {
                        mapping
                            .counters
                            .filtered_records
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let message = Message::Record {
                        record: record.lambda.clone(),
                        size,
                        created_ms: record.created_ms,
                    };
                    // A consumer gone means the gateway is stopping.
                    let _ = tx.send(message).await;
                }
            }
            for (_, tx, _) in &outlets {
                let _ = tx
                    .send(Message::PageEnd {
                        closed: next.is_none(),
                    })
                    .await;
            }
            let Some(next) = next else {
                info!(mappings = %self.poller.label(), shard = %self.shard_id, "shard closed and read");
                break true;
            };
            iterator = next;
            // More may be waiting right behind a full page.
            if got < GET_RECORDS_LIMIT && !pause(&mut self.poller.stop, POLL).await {
                break false;
            }
        };
        // Consumers finish with what they were handed (each sees its channel close).
        drop(outlets);
        let mut drained = true;
        for consumer in std::mem::take(&mut consumers.0) {
            drained &= consumer.await.unwrap_or(false);
        }
        if closed && drained {
            done.send_replace(true);
        }
    }

    /// An iterator at `position`, retrying until it works; `None` when the shard is gone or
    /// the gateway stops.
    async fn iterator(&mut self, position: &Position) -> Option<String> {
        loop {
            let result = self
                .poller
                .stream
                .iterator(&self.stream_arn, &self.shard_id, position)
                .await;
            match result {
                Ok(iterator) => return iterator,
                Err(error) => {
                    warn!(mappings = %self.poller.label(), shard = %self.shard_id,
                          %error, "GetShardIterator failed; retrying");
                    if !pause(&mut self.poller.stop, UNAVAILABLE_RETRY).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// The reader's consumers: aborted with it (a replaced stream's records are of no use).
#[derive(Debug)]
struct Consumers(Vec<tokio::task::JoinHandle<bool>>);

impl Drop for Consumers {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// Records collected for the next invocation.
#[derive(Debug, Default)]
struct Batch {
    records: Vec<Value>,
    bytes: usize,
    first_at: Option<Instant>,
    /// Newest `ApproximateCreationDateTime`, epoch ms.
    newest_ms: Option<i64>,
}

impl Batch {
    fn push(&mut self, record: Value, size: usize, created_ms: Option<i64>) {
        self.bytes += size;
        self.records.push(record);
        self.first_at.get_or_insert_with(Instant::now);
        if let Some(ms) = created_ms {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
    }
}

/// One mapping's view of one shard: batches and invocations, in order.
#[derive(Debug)]
struct Consumer {
    mapping: Arc<Mapping>,
    poller: Poller,
    shard_id: String,
    rx: mpsc::Receiver<Message>,
}

impl Consumer {
    fn label(&self) -> String {
        format!("{}/{}", self.mapping.function, self.mapping.source.event_id)
    }

    /// Delivers everything it is handed; false when it stopped before the end (the
    /// gateway is stopping).
    async fn run(mut self) -> bool {
        let source = self.mapping.source.clone();
        let mut batch = Batch::default();
        // Whether the reader has caught up since the batch's last record: a batch goes
        // out then (or when full, or when its window has passed), as Lambda's poller sends
        // what one poll found.
        let mut caught_up = false;
        // When the last invocation ended: the next starts at least `POLL` later unless its
        // batch is full, as when this mapping read for itself (read, invoke, wait, read):
        // that is what bounds a stream's coalesced frames to about 4 a second.
        let mut last_end: Option<Instant> = None;
        loop {
            // Stopping: what is queued is dropped (the next start reads from `LATEST`).
            if *self.poller.stop.borrow() {
                return false;
            }
            let ready_at = batch.first_at.map(|first| {
                let window = first + source.max_batching_window;
                last_end.map_or(window, |end| window.max(end + POLL))
            });
            let due = !batch.records.is_empty()
                && (batch.records.len() >= source.batch_size
                    || (caught_up && ready_at.is_some_and(|r| Instant::now() >= r)));
            if due {
                let full = std::mem::take(&mut batch);
                let delivered = self.deliver(full).await;
                last_end = Some(Instant::now());
                if !delivered {
                    return false;
                }
                continue;
            }
            let next = match ready_at.filter(|_| caught_up) {
                // Caught up with a batch that is not due yet: wait for more, or until it is.
                Some(ready_at) => match tokio::time::timeout_at(ready_at, self.rx.recv()).await {
                    Ok(message) => message,
                    Err(_) => continue,
                },
                None => self.rx.recv().await,
            };
            match next {
                Some(Message::Record {
                    record,
                    size,
                    created_ms,
                }) => {
                    caught_up = false;
                    // Never build an event over Lambda's payload limit.
                    if !batch.records.is_empty() && batch.bytes + size > MAX_BATCH_BYTES {
                        let full = std::mem::take(&mut batch);
                        if !self.deliver(full).await {
                            return false;
                        }
                    }
                    batch.push(record, size, created_ms);
                }
                Some(Message::PageEnd { closed }) => {
                    caught_up = true;
                    if closed && !batch.records.is_empty() {
                        let full = std::mem::take(&mut batch);
                        return self.deliver(full).await;
                    }
                }
                // The reader ended: the shard is closed (its last batch went out at the
                // closing page) or the gateway is stopping.
                None => return batch.records.is_empty(),
            }
        }
    }

    /// Invokes the function with `batch`, retrying as configured. Returns false when the
    /// gateway is stopping (the batch is dropped).
    async fn deliver(&mut self, batch: Batch) -> bool {
        let mapping = self.mapping.clone();
        let counters = &mapping.counters;
        let count = batch.records.len() as u64;
        let Some(function) = self.poller.pool.function(&mapping.function).cloned() else {
            error!(mapping = %self.label(), "function missing from the pool");
            return false;
        };
        let payload = Bytes::from(json!({ "Records": batch.records }).to_string());
        let mut attempt: u32 = 0;
        let mut backoff = RETRY_BACKOFF_START;
        loop {
            let started = Instant::now();
            let invocation = {
                let function = function.clone();
                let payload = payload.clone();
                tokio::spawn(async move { function.invoke(payload).await })
            };
            let failure = match invocation.await {
                Ok(Ok(Outcome::Response(_) | Outcome::Streamed { .. })) => None,
                Ok(Ok(Outcome::Error {
                    error_type,
                    message,
                })) => Some(format!("{error_type}: {message}")),
                Ok(Err(e)) => Some(e.to_string()),
                Err(join) => Some(join.to_string()),
            };
            let Some(failure) = failure else {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters.records.fetch_add(count, Ordering::Relaxed);
                if let Some(newest) = batch.newest_ms {
                    let lag = chrono::Utc::now().timestamp_millis().saturating_sub(newest);
                    counters
                        .last_lag_ms
                        .store(u64::try_from(lag).unwrap_or(0), Ordering::Relaxed);
                    counters.has_lag.store(true, Ordering::Relaxed);
                }
                debug!(mapping = %self.label(), records = count,
                       duration_ms = started.elapsed().as_millis(), "batch delivered");
                return true;
            };
            counters.failures.fetch_add(1, Ordering::Relaxed);
            if *self.poller.stop.borrow() {
                return false;
            }
            let max = mapping.source.max_retry_attempts;
            if max.is_some_and(|max| attempt >= max) {
                counters.skipped_batches.fetch_add(1, Ordering::Relaxed);
                counters.skipped_records.fetch_add(count, Ordering::Relaxed);
                error!(mapping = %self.label(), shard = %self.shard_id, records = count,
                       attempts = attempt + 1, %failure,
                       "batch failed after the last retry; skipping it (no on-failure destination)");
                return true;
            }
            attempt += 1;
            counters.retries.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %self.label(), shard = %self.shard_id, records = count,
                  attempt, %failure, "batch failed; retrying");
            if !pause(&mut self.poller.stop, backoff).await {
                return false;
            }
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}
