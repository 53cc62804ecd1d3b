//! What one stream still has to store in the media bucket, in the order it must land, so
//! that a storage outage delays the stream's objects without reordering or losing them.
//!
//! The publisher queues every object here ([`Outbox::push`]) and never awaits the bucket
//! itself; [`Uploads`] stores the queue's front, one object at a time, while the publisher
//! goes on packaging. Invariants:
//! - objects are stored in the order they were queued; the publisher queues a segment
//!   before the playlist that names it and an init segment before its media, so a stored
//!   playlist only ever names stored objects (or objects marked `#EXT-X-GAP`);
//! - a failed upload is retried, after 250 ms doubling up to [`MAX_BACKOFF`], and nothing
//!   behind it goes first: an outage is a delay, and every queued segment is stored once
//!   the bucket is back;
//! - a name queued again (a playlist after each segment, the master, the thumbnail)
//!   replaces its older queued version, which leaves the queue: only the newest version is
//!   uploaded, after every segment it names. The version being uploaded is never touched;
//! - the queued bytes are bounded ([`Outbox::limit`]): past the bound the oldest queued
//!   segment (never the one being uploaded, never an init segment) is dropped and reported
//!   ([`Dropped`]), so the publisher marks it `#EXT-X-GAP` and queues its playlist again.
//!   Memory stays bounded however long the outage; what was dropped is a logged gap.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::upload::{ObjectKind, UploadError, Uploader};

/// The longest wait between two attempts at the same object.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(4);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// What a queued object is for (what the publisher does once it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    Init,
    /// A media segment at `position` of `track`'s playlist.
    Segment {
        track: usize,
        position: u64,
    },
    /// A media playlist; `completed_at` is when the newest segment it names was complete
    /// at the node (availability lag, measured when the playlist is stored).
    Playlist {
        completed_at: Option<Instant>,
    },
    Master,
    Thumbnail,
}

impl Purpose {
    /// Whether a newer version of the same name supersedes a queued one.
    fn replaceable(&self) -> bool {
        matches!(
            self,
            Purpose::Playlist { .. } | Purpose::Master | Purpose::Thumbnail
        )
    }
}

/// One object to store, relative to the stream's prefix.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub name: String,
    pub body: Bytes,
    pub kind: ObjectKind,
    pub purpose: Purpose,
}

/// A segment the outbox gave up on to stay within its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dropped {
    pub track: usize,
    pub position: u64,
    pub name: String,
}

/// The queue (pure state: the uploading is [`Uploads`]'s).
#[derive(Debug)]
pub(super) struct Outbox {
    queue: VecDeque<Job>,
    bytes: usize,
    limit: usize,
    /// The front is being uploaded.
    in_flight: bool,
}

impl Outbox {
    /// An empty outbox holding at most about `limit` bytes of queued objects.
    pub(super) fn new(limit: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            bytes: 0,
            limit,
            in_flight: false,
        }
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues `job` at the back (replacing a queued older version of a replaceable name)
    /// and returns the segments dropped to stay within the bound, oldest first.
    pub(super) fn push(&mut self, job: Job) -> Vec<Dropped> {
        if job.purpose.replaceable() {
            let first_idle = usize::from(self.in_flight);
            if let Some(i) =
                (first_idle..self.queue.len()).find(|&i| self.queue[i].name == job.name)
                && let Some(old) = self.queue.remove(i)
            {
                self.bytes -= old.body.len();
            }
        }
        self.bytes += job.body.len();
        self.queue.push_back(job);
        let mut dropped = Vec::new();
        while self.bytes > self.limit {
            let first_idle = usize::from(self.in_flight);
            let Some(i) = (first_idle..self.queue.len())
                .find(|&i| matches!(self.queue[i].purpose, Purpose::Segment { .. }))
            else {
                break;
            };
            let Some(old) = self.queue.remove(i) else {
                break;
            };
            self.bytes -= old.body.len();
            if let Purpose::Segment { track, position } = old.purpose {
                dropped.push(Dropped {
                    track,
                    position,
                    name: old.name,
                });
            }
        }
        dropped
    }

    /// The front, to upload now; `None` when empty or already uploading.
    pub(super) fn start(&mut self) -> Option<Job> {
        if self.in_flight {
            return None;
        }
        let job = self.queue.front()?.clone();
        self.in_flight = true;
        Some(job)
    }

    /// The front is stored: it leaves the queue.
    pub(super) fn stored(&mut self) -> Option<Job> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        let job = self.queue.pop_front()?;
        self.bytes -= job.body.len();
        Some(job)
    }

    /// The front's upload failed: it stays at the front for the next attempt.
    pub(super) fn failed(&mut self) {
        self.in_flight = false;
    }
}

type Upload = Pin<Box<dyn Future<Output = Result<(), UploadError>> + Send>>;

/// The outbox and its one upload in flight, retried with backoff.
pub(super) struct Uploads {
    pub outbox: Outbox,
    uploader: Uploader,
    current: Option<Upload>,
    backoff: Duration,
    retry_at: Option<tokio::time::Instant>,
    /// Since when uploads have been failing (an outage), for the log and the gauge.
    failing_since: Option<Instant>,
}

/// What an upload attempt came to.
pub(super) enum Attempt {
    /// The front is stored; `outage` is how long storing had been failing before.
    Stored { job: Job, outage: Option<Duration> },
    /// The front failed and will be retried; `first` is the first failure of an outage.
    Failed { error: UploadError, first: bool },
}

impl Uploads {
    pub(super) fn new(uploader: Uploader, limit: usize) -> Uploads {
        Uploads {
            outbox: Outbox::new(limit),
            uploader,
            current: None,
            backoff: FIRST_BACKOFF,
            retry_at: None,
            failing_since: None,
        }
    }

    /// Starts the front's upload unless one is running or a retry is due later.
    pub(super) fn pump(&mut self) {
        if self.current.is_some() || self.retry_at.is_some() {
            return;
        }
        if let Some(job) = self.outbox.start() {
            let uploader = self.uploader.clone();
            self.current = Some(Box::pin(async move {
                uploader.put(&job.name, job.body, job.kind).await
            }));
        }
    }

    /// Waits for the running upload (or the retry timer) and settles it. Pending forever
    /// when there is nothing to do: meant for one arm of a `select!`.
    pub(super) async fn next(&mut self) -> Option<Attempt> {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
            self.retry_at = None;
            self.pump();
            return None;
        }
        let Some(upload) = self.current.as_mut() else {
            return std::future::pending().await;
        };
        let result = upload.await;
        self.current = None;
        match result {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                let outage = self.failing_since.take().map(|since| since.elapsed());
                let stored = self.outbox.stored();
                self.pump();
                stored.map(|job| Attempt::Stored { job, outage })
            }
            Err(error) => {
                self.outbox.failed();
                let first = self.failing_since.is_none();
                self.failing_since.get_or_insert_with(Instant::now);
                self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Some(Attempt::Failed { error, first })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(track: usize, position: u64, size: usize) -> Job {
        Job {
            name: format!("{track}/seg-{position:06}.m4s"),
            body: Bytes::from(vec![0u8; size]),
            kind: ObjectKind::Segment,
            purpose: Purpose::Segment { track, position },
        }
    }

    fn playlist(track: usize, version: u8) -> Job {
        Job {
            name: format!("{track}/index.m3u8"),
            body: Bytes::from(vec![version; 10]),
            kind: ObjectKind::Playlist,
            purpose: Purpose::Playlist { completed_at: None },
        }
    }

    fn names(outbox: &Outbox) -> Vec<String> {
        outbox.queue.iter().map(|j| j.name.clone()).collect()
    }

    #[test]
    fn objects_leave_in_the_order_they_were_queued_and_a_failure_keeps_the_front() {
        let mut o = Outbox::new(1 << 20);
        o.push(segment(0, 0, 100));
        o.push(playlist(0, 1));
        let first = o.start().expect("front");
        assert_eq!(first.name, "0/seg-000000.m4s");
        assert!(o.start().is_none(), "one upload at a time");
        o.failed();
        assert_eq!(o.start().expect("retried").name, "0/seg-000000.m4s");
        assert_eq!(o.stored().expect("stored").name, "0/seg-000000.m4s");
        assert_eq!(o.start().expect("next").name, "0/index.m3u8");
        assert_eq!(o.stored().map(|j| j.body[0]), Some(1));
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn a_newer_playlist_replaces_the_queued_one_and_still_follows_its_segments() {
        let mut o = Outbox::new(1 << 20);
        o.push(segment(0, 0, 100));
        o.push(playlist(0, 1));
        o.push(segment(0, 1, 100));
        o.push(playlist(0, 2));
        assert_eq!(
            names(&o),
            ["0/seg-000000.m4s", "0/seg-000001.m4s", "0/index.m3u8"]
        );
        assert_eq!(o.queue.back().map(|j| j.body[0]), Some(2));
        assert_eq!(o.bytes(), 210);
    }

    #[test]
    fn the_version_being_uploaded_is_not_replaced() {
        let mut o = Outbox::new(1 << 20);
        o.push(playlist(0, 1));
        assert!(o.start().is_some());
        o.push(playlist(0, 2));
        assert_eq!(names(&o), ["0/index.m3u8", "0/index.m3u8"]);
        assert_eq!(o.stored().map(|j| j.body[0]), Some(1));
        assert_eq!(o.start().map(|j| j.body[0]), Some(2));
    }

    #[test]
    fn past_the_bound_the_oldest_idle_segments_are_dropped_and_reported() {
        let mut o = Outbox::new(350);
        o.push(segment(0, 0, 100));
        assert!(o.start().is_some(), "segment 0 is being uploaded");
        o.push(playlist(0, 1));
        o.push(segment(1, 0, 100));
        o.push(segment(0, 1, 100));
        let dropped = o.push(segment(0, 2, 100));
        assert_eq!(
            dropped,
            [Dropped {
                track: 1,
                position: 0,
                name: "1/seg-000000.m4s".into()
            }]
        );
        assert!(o.bytes() <= o.limit(), "{}", o.bytes());
        assert_eq!(
            names(&o),
            [
                "0/seg-000000.m4s",
                "0/index.m3u8",
                "0/seg-000001.m4s",
                "0/seg-000002.m4s"
            ]
        );
    }

    #[test]
    fn init_segments_and_playlists_are_never_dropped() {
        let mut o = Outbox::new(10);
        o.push(Job {
            name: "0/init.mp4".into(),
            body: Bytes::from(vec![0u8; 50]),
            kind: ObjectKind::Init,
            purpose: Purpose::Init,
        });
        let dropped = o.push(playlist(0, 1));
        assert!(dropped.is_empty());
        assert_eq!(names(&o), ["0/init.mp4", "0/index.m3u8"]);
    }
}
