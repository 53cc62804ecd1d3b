//! The stream's record in the table (go-live, quality samples, the live thumbnail's URL,
//! and the status checks), kept by a task of its own so that the publisher never waits on
//! the table: a slow or failing table delays the record, never the media.
//!
//! Invariants:
//! - writes are made in the order they were asked for; a write the table could not take
//!   (`StoreError::Unavailable`) is retried, after 500 ms doubling up to 5 s, and the
//!   writes behind it wait: samples taken during an outage are stored once it is over;
//! - the backlog is bounded ([`MAX_PENDING`]: 10 minutes of samples); past it the oldest
//!   sample is dropped with a warning, go-live and the thumbnail URL never are;
//! - a write the table refuses for good (a conditional write that lost) is dropped with a
//!   log line: it is not retried;
//! - every [`STATUS_EVERY`] the stream's status is read; the publisher sees the latest
//!   answer ([`StatusView`]) and ends the stream when it says so. A failed read changes
//!   nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rill_core::quality::QualitySample;
use rill_core::store::{MetricsStore, StoreError, StreamStore};
use rill_core::{Command, StreamStatus};
use tokio::sync::{mpsc, watch};

/// How often the stream's status is read.
pub(super) const STATUS_EVERY: Duration = Duration::from_secs(2);
/// Writes waiting for the table at most (120 samples at 5 s: 10 minutes).
pub(super) const MAX_PENDING: usize = 120;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the end of a stream waits for writes still queued.
const DRAIN: Duration = Duration::from_secs(5);

/// One write to the stream's record.
#[derive(Debug, Clone)]
pub(super) enum Write {
    /// `live`, once the master playlist is stored.
    GoLive,
    Sample(Box<QualitySample>),
    /// Points `thumbnailUrl` at this URL unless the owner chose one.
    ListThumbnail(String),
}

/// The latest status read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct StatusView {
    /// Why the stream is over, if the table says it is.
    pub over: Option<&'static str>,
    pub viewers: u64,
}

/// The publisher's handle on the record task.
pub(super) struct Record {
    writes: mpsc::UnboundedSender<Write>,
    pub status: watch::Receiver<StatusView>,
    task: tokio::task::JoinHandle<()>,
}

impl Record {
    /// Starts the record task of stream `id`. `resumed`: taken over from a node that had
    /// made the stream live already (its go-live conflict is expected).
    pub(super) fn start(
        id: String,
        store: Arc<dyn StreamStore>,
        metrics: Arc<dyn MetricsStore>,
        resumed: bool,
    ) -> Record {
        let (writes, rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(StatusView::default());
        let worker = Worker {
            id,
            store,
            metrics,
            resumed,
            pending: VecDeque::new(),
        };
        let task = tokio::spawn(worker.run(rx, status_tx));
        Record {
            writes,
            status,
            task,
        }
    }

    /// Queues a write (the task bounds the backlog).
    pub(super) fn write(&self, write: Write) {
        let _ = self.writes.send(write);
    }

    /// Stops the task once the queued writes are stored, or [`DRAIN`] has passed.
    pub(super) async fn close(self) {
        drop(self.writes);
        let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), self.task).await;
    }

    /// Stops the task at once, dropping what is queued (the stream is another node's).
    pub(super) fn abandon(self) {
        self.task.abort();
    }
}

struct Worker {
    id: String,
    store: Arc<dyn StreamStore>,
    metrics: Arc<dyn MetricsStore>,
    resumed: bool,
    pending: VecDeque<Write>,
}

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Write>,
        status: watch::Sender<StatusView>,
    ) {
        let mut check = tokio::time::interval(STATUS_EVERY);
        let mut backoff = FIRST_BACKOFF;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(write) => self.queue(write),
                    None => break,
                },
                _ = check.tick() => {
                    let previous = *status.borrow();
                    if let Some(view) = self.check(previous).await {
                        status.send_replace(view);
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
            }
            if retry_at.is_some() {
                continue;
            }
            match self.flush().await {
                Ok(()) => {
                    if failing {
                        tracing::info!(stream_id = %self.id, "the table is back; the stream's record caught up");
                    }
                    failing = false;
                    backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(stream_id = %self.id, error = %e, queued = self.pending.len(), "the table is failing; the stream's record waits and retries");
                    }
                    failing = true;
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        while !self.pending.is_empty() && tokio::time::Instant::now() < deadline {
            if self.flush().await.is_err() {
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + backoff)).await;
            }
        }
        if !self.pending.is_empty() {
            tracing::warn!(stream_id = %self.id, lost = self.pending.len(), "the stream ended with record writes the table never took");
        }
    }

    fn queue(&mut self, write: Write) {
        if self.pending.len() >= MAX_PENDING
            && let Some(i) = self
                .pending
                .iter()
                .position(|w| matches!(w, Write::Sample(_)))
        {
            self.pending.remove(i);
            tracing::warn!(stream_id = %self.id, "quality sample dropped: the table has been failing for too long");
        }
        self.pending.push_back(write);
    }

    /// Stores the queued writes in order; stops at the first the table could not take.
    async fn flush(&mut self) -> Result<(), StoreError> {
        while let Some(write) = self.pending.front() {
            match self.store_one(write).await {
                Err(e @ StoreError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(stream_id = %self.id, error = %e, write = ?write_name(write), "record write refused; dropped");
                }
                Ok(()) => {}
            }
            self.pending.pop_front();
        }
        Ok(())
    }

    async fn store_one(&self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::GoLive => {
                match self
                    .store
                    .apply(&self.id, Command::GoLive, rill_core::time::now())
                    .await
                {
                    Ok(_) => {
                        tracing::info!(stream_id = %self.id, "stream is live");
                        Ok(())
                    }
                    // Taken over from another node, which had made it live already.
                    Err(StoreError::Conflict {
                        current: Some(StreamStatus::Live),
                        ..
                    }) if self.resumed => {
                        tracing::info!(stream_id = %self.id, "stream continues live on this node");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Write::Sample(sample) => self.metrics.put_sample(sample).await,
            Write::ListThumbnail(url) => list_thumbnail(self.store.as_ref(), &self.id, url).await,
        }
    }

    /// The status as the table has it now; `None` when it could not be read.
    async fn check(&self, previous: StatusView) -> Option<StatusView> {
        match self.store.get_stream(&self.id).await {
            Ok(Some(s)) if s.status.is_final() => Some(StatusView {
                over: Some("stream ended by its owner"),
                ..previous
            }),
            Ok(Some(s)) => Some(StatusView {
                over: None,
                viewers: s.stats.current_viewers,
            }),
            Ok(None) => Some(StatusView {
                over: Some("stream deleted"),
                ..previous
            }),
            Err(_) => None,
        }
    }
}

fn write_name(write: &Write) -> &'static str {
    match write {
        Write::GoLive => "go-live",
        Write::Sample(_) => "sample",
        Write::ListThumbnail(_) => "thumbnail URL",
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Points the stream's `thumbnailUrl` at the live thumbnail unless the owner chose one. A
/// conditional write: an owner edit in between wins and this one is dropped.
async fn list_thumbnail(store: &dyn StreamStore, id: &str, url: &str) -> Result<(), StoreError> {
    let stream = match store.get_stream(id).await? {
        Some(s) if s.thumbnail_url.is_none() => s,
        _ => return Ok(()),
    };
    let patch = rill_core::stream::StreamPatch {
        thumbnail_url: Some(Some(url.to_owned())),
        ..Default::default()
    };
    let updated = match stream.patched(&patch, rill_core::time::now()) {
        Ok(updated) => updated,
        Err(e) => {
            tracing::warn!(stream_id = %id, error = %e, "thumbnail URL rejected");
            return Ok(());
        }
    };
    match store.update_stream(&updated).await {
        Ok(_) => Ok(()),
        Err(e @ StoreError::Unavailable(_)) => Err(e),
        Err(e) => {
            tracing::info!(stream_id = %id, error = %e, "thumbnail URL not set (stream edited meanwhile)");
            Ok(())
        }
    }
}
