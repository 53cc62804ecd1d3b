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
//!   gateway's own tests use, keeps every shard iterator it hands out). Mappings on the
//!   same stream from the same starting position share the reads: each page is read once
//!   and handed to every mapping, which batches and invokes on its own ([`shard`]); on AWS
//!   each mapping reads for itself, which costs nothing there but tripled DynamoDB Local's
//!   stream work here.
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

use rill_aws::table_stream::TableStream;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::pool::Pool;
use crate::template::{FunctionSpec, StartingPosition, StreamRef, StreamSource};

mod shard;

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
        // Mappings on one stream from one starting position share its reads (below).
        let mut groups: Vec<Vec<Arc<Mapping>>> = Vec::new();
        for mapping in &mappings {
            if !mapping.source.enabled {
                mapping.set_state("disabled");
                info!(function = %mapping.function, event = %mapping.source.event_id,
                      "event source mapping disabled in the template");
                continue;
            }
            let same = |g: &&mut Vec<Arc<Mapping>>| {
                g[0].source.stream == mapping.source.stream
                    && g[0].source.starting_position == mapping.source.starting_position
            };
            match groups.iter_mut().find(same) {
                Some(group) => group.push(mapping.clone()),
                None => groups.push(vec![mapping.clone()]),
            }
        }
        let mut tasks = Vec::new();
        for group in groups {
            let poller = Poller {
                mappings: group,
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

/// Reads one table stream for a group of mappings (every mapping on the same stream from
/// the same starting position): each shard is read once, and its records are handed to
/// one consumer per mapping ([`shard`]), which filters, batches and invokes on its own.
#[derive(Debug, Clone)]
struct Poller {
    mappings: Vec<Arc<Mapping>>,
    pool: Arc<Pool>,
    stream: TableStream,
    settings: StreamSettings,
    stop: watch::Receiver<bool>,
}

/// A shard being read and whether every mapping has drained it (it was closed).
#[derive(Debug)]
struct ShardTask {
    done: watch::Receiver<bool>,
    handle: JoinHandle<()>,
}

impl Poller {
    fn label(&self) -> String {
        self.mappings
            .iter()
            .map(|m| format!("{}/{}", m.function, m.source.event_id))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn set_state(&self, state: &'static str) {
        for m in &self.mappings {
            m.set_state(state);
        }
    }

    /// The group's common source settings (stream, starting position).
    fn source(&self) -> &StreamSource {
        &self.mappings[0].source
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
                        self.source().starting_position
                    } else {
                        StartingPosition::TrimHorizon
                    };
                    self.poll_stream(&arn, position).await;
                }
                Ok(None) => {
                    if !warned {
                        info!(mappings = %self.label(), table = %self.settings.table_name,
                              "table has no stream; nothing to poll");
                        warned = true;
                    }
                    self.set_state("no_stream");
                }
                Err(message) => {
                    if !warned {
                        warn!(mappings = %self.label(), %message,
                              "cannot find the stream; retrying every few seconds");
                        warned = true;
                    }
                    self.set_state("waiting_for_table");
                }
            }
            first_attempt = false;
            if !pause(&mut self.stop, UNAVAILABLE_RETRY).await {
                break;
            }
        }
        self.set_state("stopped");
    }

    async fn resolve_stream(&self) -> Result<Option<String>, String> {
        match &self.source().stream {
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
        for m in &self.mappings {
            let mut status = lock(&m.status);
            status.state = "polling";
            status.stream_arn = Some(arn.to_owned());
        }
        info!(mappings = %self.label(), stream = %arn, "polling the table stream");
        let mut shards: HashMap<String, ShardTask> = HashMap::new();
        let mut first_listing = true;
        loop {
            match self.stream.shards(arn).await {
                Ok(listed) => {
                    for listed_shard in listed {
                        let (shard_id, parent) = (listed_shard.id, listed_shard.parent);
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
                        let reader = shard::ShardReader {
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
                    debug!(mappings = %self.label(), message = %e, "cannot list shards");
                }
            }
            if !pause(&mut self.stop, DISCOVERY_INTERVAL).await {
                break;
            }
            // A recreated table has a new stream: start over on it.
            if matches!(self.source().stream, StreamRef::Table(_))
                && let Ok(current) = self.resolve_stream().await
                && current.as_deref() != Some(arn)
            {
                info!(mappings = %self.label(), old = %arn, new = ?current, "table stream changed");
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
