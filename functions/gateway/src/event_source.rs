//! DynamoDB stream → function, the way Lambda's event source mapping does it, for every
//! `Type: DynamoDB` event of the template (Rill: `events-fanout` on the table's stream).
//!
//! This is the mapping's policy; the DynamoDB Streams calls themselves and the conversion
//! of SDK records into Lambda's event JSON are `rill_aws::table_stream`, so this crate
//! names no `aws-sdk-*` type.
//!
//! - The stream is the table's `LatestStreamArn` (`DescribeTable` on `TABLE_NAME`), or the
//!   event's literal ARN. No table yet (DynamoDB not up, table not created) → retried every
//!   few seconds; a table without a stream → the mapping idles and rechecks, as does a
//!   mapping whose table was recreated with a new stream.
//! - Shards present at start are read from `StartingPosition` (the template's `LATEST`);
//!   shards that appear later, and every shard of a stream found only after start, from
//!   `TRIM_HORIZON`, so nothing written after the mapping exists is skipped. A child shard
//!   waits until its parent is drained, so a key's records stay in order across splits.
//! - Each shard is polled at Lambda's 4 polls per second, no faster (moto, which the
//!   gateway's own tests use, keeps every shard iterator it hands out).
//! - Records collect into a batch until `BatchSize` is reached or
//!   `MaximumBatchingWindowInSeconds` has passed since the batch's first record (or the
//!   payload nears Lambda's 6 MB limit); then the function is invoked through the pool
//!   with `{"Records":[...]}` in Lambda's DynamoDB event format. One batch per shard at a
//!   time, in order.
//! - A failed invocation (function error, crash, timeout, throttle) is retried up to
//!   `MaximumRetryAttempts` times with backoff (-1: until it succeeds, as Lambda retries
//!   until the record expires); then the batch is skipped with an error log, like Lambda
//!   without an on-failure destination. `BisectBatchOnFunctionError` is not emulated:
//!   whole batches are retried.
//! - `FilterCriteria` is evaluated as Lambda does ([`crate::filter`]): a record no filter
//!   matches is consumed without reaching the function, and does not count towards
//!   `BatchSize`. So a filter missing a prefix fails locally as it would on AWS.
//! - On shutdown polling stops at once; an invocation in flight may finish within the
//!   gateway's grace period; records not yet delivered are dropped (the next start reads
//!   from `LATEST`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_aws::table_stream::{Position, ReadError, TableStream};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::pool::{Outcome, Pool};
use crate::template::{FunctionSpec, StartingPosition, StreamRef, StreamSource};

/// Poll interval: Lambda's 4 polls per second, which bounds how many batches (and so
/// coalesced frames) a stream gets per second, as on AWS.
const POLL: Duration = Duration::from_millis(250);
/// How often the shard list and the table's stream are checked.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(2);
/// Retry interval while the table or its stream is missing or the endpoint is down.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(3);
/// GetRecords returns at most 1,000 records.
const GET_RECORDS_LIMIT: usize = 1000;
/// Lambda's synchronous payload limit is 6 MB; leave room for the envelope.
const MAX_BATCH_BYTES: usize = 5_500_000;
const RETRY_BACKOFF_START: Duration = Duration::from_millis(200);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where the mappings find their stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub table_name: String,
    pub region: String,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    skipped_batches: AtomicU64,
    skipped_records: AtomicU64,
    /// Records read and dropped by the mapping's filter.
    filtered_records: AtomicU64,
    last_lag_ms: AtomicU64,
    has_lag: AtomicBool,
}

#[derive(Debug, Clone, Default)]
struct Status {
    state: &'static str,
    stream_arn: Option<String>,
}

/// One function's mapping from one stream.
#[derive(Debug)]
struct Mapping {
    function: String,
    source: StreamSource,
    counters: Counters,
    status: Mutex<Status>,
    /// Shard readers holding an iterator: once this is non-zero, a record written now is
    /// delivered even from `LATEST`.
    reading_shards: AtomicUsize,
}

impl Mapping {
    fn set_state(&self, state: &'static str) {
        lock(&self.status).state = state;
    }

    fn stats(&self) -> MappingStats {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let status = lock(&self.status).clone();
        MappingStats {
            function: self.function.clone(),
            event: self.source.event_id.clone(),
            state: status.state,
            stream_arn: status.stream_arn,
            shards: self.reading_shards.load(Ordering::Relaxed),
            batch_size: self.source.batch_size,
            maximum_batching_window_ms: u64::try_from(self.source.max_batching_window.as_millis())
                .unwrap_or(u64::MAX),
            maximum_retry_attempts: self.source.max_retry_attempts.map_or(-1, i64::from),
            batches: n(&c.batches),
            records: n(&c.records),
            failures: n(&c.failures),
            retries: n(&c.retries),
            skipped_batches: n(&c.skipped_batches),
            skipped_records: n(&c.skipped_records),
            filtered_records: n(&c.filtered_records),
            last_lag_ms: c.has_lag.load(Ordering::Relaxed).then(|| n(&c.last_lag_ms)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One entry of `event_source_mappings` in `GET /_gateway/stats`.
#[derive(Debug, Serialize)]
pub struct MappingStats {
    pub function: String,
    /// The event's key under `Events`.
    pub event: String,
    /// `starting`, `waiting_for_table`, `no_stream`, `polling`, `disabled`, `stopped`.
    pub state: &'static str,
    pub stream_arn: Option<String>,
    /// Shards being read (an iterator is held): records written from now on will be
    /// delivered.
    pub shards: usize,
    pub batch_size: usize,
    pub maximum_batching_window_ms: u64,
    /// -1: retry until success.
    pub maximum_retry_attempts: i64,
    /// Batches the function accepted.
    pub batches: u64,
    /// Records in those batches.
    pub records: u64,
    /// Failed invocations, retries included.
    pub failures: u64,
    pub retries: u64,
    /// Batches given up after the last retry.
    pub skipped_batches: u64,
    pub skipped_records: u64,
    pub filtered_records: u64,
    /// At the last delivered batch: now − `ApproximateCreationDateTime` of its newest
    /// record, in ms.
    pub last_lag_ms: Option<u64>,
}

/// The running event source mappings.
#[derive(Debug)]
pub struct EventSources {
    mappings: Vec<Arc<Mapping>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl EventSources {
    /// Mappings that will never run (`--no-stream-poller`): listed in the stats, as
    /// `disabled`, so a missing fan-out is visible.
    pub fn disabled(functions: &[FunctionSpec]) -> Self {
        let mappings = mappings_of(functions);
        for m in &mappings {
            m.set_state("disabled");
        }
        Self {
            mappings,
            stop: watch::Sender::new(true),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts one poller per `Type: DynamoDB` event of the template.
    pub fn start(
        functions: &[FunctionSpec],
        pool: Arc<Pool>,
        sdk: &rill_aws::SdkConfig,
        settings: StreamSettings,
    ) -> Self {
        let mappings = mappings_of(functions);
        let stop = watch::Sender::new(false);
        let stream = TableStream::new(sdk, settings.region.clone());
        let mut tasks = Vec::new();
        for mapping in &mappings {
            if !mapping.source.enabled {
                mapping.set_state("disabled");
                info!(function = %mapping.function, event = %mapping.source.event_id,
                      "event source mapping disabled in the template");
                continue;
            }
            let poller = Poller {
                mapping: mapping.clone(),
                pool: pool.clone(),
                stream: stream.clone(),
                settings: settings.clone(),
                stop: stop.subscribe(),
            };
            tasks.push(tokio::spawn(poller.run()));
        }
        Self {
            mappings,
            stop,
            tasks: Mutex::new(tasks),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    pub fn stats(&self) -> Vec<MappingStats> {
        self.mappings.iter().map(|m| m.stats()).collect()
    }

    /// Stops polling and waits up to `grace` for invocations in flight.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.tasks));
        if tasks.is_empty() {
            return;
        }
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("stream pollers still delivering a batch; stopping them");
        }
        for m in &self.mappings {
            m.set_state("stopped");
        }
    }
}

fn mappings_of(functions: &[FunctionSpec]) -> Vec<Arc<Mapping>> {
    functions
        .iter()
        .flat_map(|f| {
            f.stream_sources.iter().map(|source| {
                Arc::new(Mapping {
                    function: f.name.clone(),
                    source: source.clone(),
                    counters: Counters::default(),
                    status: Mutex::new(Status {
                        state: "starting",
                        ..Status::default()
                    }),
                    reading_shards: AtomicUsize::new(0),
                })
            })
        })
        .collect()
}

/// Sleeps unless told to stop; returns false when stopping.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    let stopped = tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        () = tokio::time::sleep(duration) => false,
    };
    !stopped && !*stop.borrow()
}

#[derive(Debug, Clone)]
struct Poller {
    mapping: Arc<Mapping>,
    pool: Arc<Pool>,
    stream: TableStream,
    settings: StreamSettings,
    stop: watch::Receiver<bool>,
}

/// A shard reader and whether it has drained its (closed) shard.
#[derive(Debug)]
struct ShardTask {
    done: watch::Receiver<bool>,
    handle: JoinHandle<()>,
}

impl Poller {
    fn label(&self) -> String {
        format!("{}/{}", self.mapping.function, self.mapping.source.event_id)
    }

    async fn run(mut self) {
        let mut first_attempt = true;
        let mut warned = false;
        while !*self.stop.borrow() {
            match self.resolve_stream().await {
                Ok(Some(arn)) => {
                    warned = false;
                    // Records written before a late-found stream was seen must not be lost.
                    let position = if first_attempt {
                        self.mapping.source.starting_position
                    } else {
                        StartingPosition::TrimHorizon
                    };
                    self.poll_stream(&arn, position).await;
                }
                Ok(None) => {
                    if !warned {
                        info!(mapping = %self.label(), table = %self.settings.table_name,
                              "table has no stream; nothing to poll");
                        warned = true;
                    }
                    self.mapping.set_state("no_stream");
                }
                Err(message) => {
                    if !warned {
                        warn!(mapping = %self.label(), %message,
                              "cannot find the stream; retrying every few seconds");
                        warned = true;
                    }
                    self.mapping.set_state("waiting_for_table");
                }
            }
            first_attempt = false;
            if !pause(&mut self.stop, UNAVAILABLE_RETRY).await {
                break;
            }
        }
        self.mapping.set_state("stopped");
    }

    async fn resolve_stream(&self) -> Result<Option<String>, String> {
        match &self.mapping.source.stream {
            StreamRef::Arn(arn) => Ok(Some(arn.clone())),
            StreamRef::Table(_) => self
                .stream
                .latest_stream_arn(&self.settings.table_name)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Reads every shard of `arn` until the stream changes or the gateway stops.
    async fn poll_stream(&mut self, arn: &str, initial: StartingPosition) {
        {
            let mut status = lock(&self.mapping.status);
            status.state = "polling";
            status.stream_arn = Some(arn.to_owned());
        }
        info!(mapping = %self.label(), stream = %arn, "polling the table stream");
        let mut shards: HashMap<String, ShardTask> = HashMap::new();
        let mut first_listing = true;
        loop {
            match self.stream.shards(arn).await {
                Ok(listed) => {
                    for shard in listed {
                        let (shard_id, parent) = (shard.id, shard.parent);
                        if shards.contains_key(&shard_id) {
                            continue;
                        }
                        let position = if first_listing {
                            initial
                        } else {
                            StartingPosition::TrimHorizon
                        };
                        let parent_done = parent
                            .as_ref()
                            .and_then(|p| shards.get(p))
                            .map(|t| t.done.clone());
                        let (done_tx, done) = watch::channel(false);
                        let reader = ShardReader {
                            poller: self.clone(),
                            stream_arn: arn.to_owned(),
                            shard_id: shard_id.clone(),
                        };
                        let handle = tokio::spawn(reader.run(position, parent_done, done_tx));
                        shards.insert(shard_id, ShardTask { done, handle });
                    }
                    first_listing = false;
                }
                Err(e) => {
                    debug!(mapping = %self.label(), message = %e, "cannot list shards");
                }
            }
            if !pause(&mut self.stop, DISCOVERY_INTERVAL).await {
                break;
            }
            // A recreated table has a new stream: start over on it.
            if matches!(self.mapping.source.stream, StreamRef::Table(_))
                && let Ok(current) = self.resolve_stream().await
                && current.as_deref() != Some(arn)
            {
                info!(mapping = %self.label(), old = %arn, new = ?current, "table stream changed");
                break;
            }
        }
        // Stopping: readers finish what they are delivering (the gateway bounds the wait).
        // A replaced stream: its readers are of no more use.
        if !*self.stop.borrow() {
            for task in shards.values() {
                task.handle.abort();
            }
        }
        for (_, task) in shards {
            let _ = task.handle.await;
        }
    }
}

/// Counts a shard reader in [`Mapping::reading_shards`] while it lives.
#[derive(Debug)]
struct ReadingGuard(Arc<Mapping>);

impl ReadingGuard {
    fn new(mapping: &Arc<Mapping>) -> Self {
        mapping.reading_shards.fetch_add(1, Ordering::Relaxed);
        Self(mapping.clone())
    }
}

impl Drop for ReadingGuard {
    fn drop(&mut self) {
        self.0.reading_shards.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct ShardReader {
    poller: Poller,
    stream_arn: String,
    shard_id: String,
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

impl ShardReader {
    async fn run(
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
        let source = self.poller.mapping.source.clone();
        let initial = match position {
            StartingPosition::Latest => Position::Latest,
            StartingPosition::TrimHorizon => Position::TrimHorizon,
        };
        let mut last_sequence: Option<String> = None;
        let Some(mut iterator) = self.iterator(&initial).await else {
            return;
        };
        let _reading = ReadingGuard::new(&self.poller.mapping);
        let mut batch = Batch::default();
        let mut warned = false;
        loop {
            if *self.poller.stop.borrow() {
                return;
            }
            let want = source
                .batch_size
                .saturating_sub(batch.records.len())
                .clamp(1, GET_RECORDS_LIMIT);
            let response = self
                .poller
                .stream
                .records(&self.stream_arn, &iterator, want)
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
                            info!(mapping = %self.poller.label(), shard = %self.shard_id, "shard is gone");
                            return;
                        }
                        ReadError::Other(error) => {
                            if !warned {
                                warn!(mapping = %self.poller.label(), shard = %self.shard_id,
                                      %error, "GetRecords failed; retrying");
                                warned = true;
                            }
                            if !pause(&mut self.poller.stop, UNAVAILABLE_RETRY).await {
                                return;
                            }
                            continue;
                        }
                    };
                    match renewed {
                        Some(it) => iterator = it,
                        None => return,
                    }
                    continue;
                }
            };
            let got = records.len();
            for record in records {
                if let Some(seq) = record.sequence_number {
                    last_sequence = Some(seq);
                }
                let created_ms = record.created_ms;
                let record = record.lambda;
                if !source.filters.pass(&record) {
                    self.poller
                        .mapping
                        .counters
                        .filtered_records
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let size = record.to_string().len();
                // Never build an event over Lambda's payload limit.
                if !batch.records.is_empty() && batch.bytes + size > MAX_BATCH_BYTES {
                    let full = std::mem::take(&mut batch);
                    if !self.deliver(full).await {
                        return;
                    }
                }
                batch.push(record, size, created_ms);
            }

            let closed = next.is_none();
            let window_passed = batch
                .first_at
                .is_some_and(|t| t.elapsed() >= source.max_batching_window);
            if !batch.records.is_empty()
                && (batch.records.len() >= source.batch_size || window_passed || closed)
            {
                let full = std::mem::take(&mut batch);
                if !self.deliver(full).await {
                    return;
                }
            }
            let Some(next) = next else {
                info!(mapping = %self.poller.label(), shard = %self.shard_id, "shard closed and drained");
                done.send_replace(true);
                return;
            };
            iterator = next;
            // More may be waiting right behind a full page; otherwise wait, but not past
            // the end of the batching window.
            if got < want {
                let mut wait = POLL;
                if let Some(first) = batch.first_at {
                    let deadline = first + source.max_batching_window;
                    wait = wait.min(deadline.saturating_duration_since(Instant::now()));
                }
                if !pause(&mut self.poller.stop, wait).await {
                    return;
                }
            }
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
                    warn!(mapping = %self.poller.label(), shard = %self.shard_id,
                          %error, "GetShardIterator failed; retrying");
                    if !pause(&mut self.poller.stop, UNAVAILABLE_RETRY).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Invokes the function with `batch`, retrying as configured. Returns false when the
    /// gateway is stopping (the batch is dropped).
    async fn deliver(&mut self, batch: Batch) -> bool {
        let mapping = self.poller.mapping.clone();
        let counters = &mapping.counters;
        let count = batch.records.len() as u64;
        let Some(function) = self.poller.pool.function(&mapping.function).cloned() else {
            error!(mapping = %self.poller.label(), "function missing from the pool");
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
                debug!(mapping = %self.poller.label(), records = count,
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
                error!(mapping = %self.poller.label(), shard = %self.shard_id, records = count,
                       attempts = attempt + 1, %failure,
                       "batch failed after the last retry; skipping it (no on-failure destination)");
                return true;
            }
            attempt += 1;
            counters.retries.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %self.poller.label(), shard = %self.shard_id, records = count,
                  attempt, %failure, "batch failed; retrying");
            if !pause(&mut self.poller.stop, backoff).await {
                return false;
            }
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}
