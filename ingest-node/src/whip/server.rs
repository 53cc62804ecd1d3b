//! The media side of WHIP: one UDP socket for every session, one str0m [`Rtc`] per session,
//! and one tokio task (the *engine*) that owns both.
//!
//! ## Why one task for all sessions
//!
//! All sessions share one socket, so every datagram has to be matched to its session with
//! [`Rtc::accepts`] (ICE ufrag for STUN, the nominated remote address for the rest), which
//! needs the `Rtc`. With one task owning every `Rtc` that is a plain method call: no lock
//! per packet, no channel hop per packet, no second demultiplexer that re-implements
//! str0m's rules. str0m is sans-IO and does microseconds of work per packet, so one task
//! carries hundreds of publishers; a node that needs more binds more sockets (one engine
//! each). What must not happen is one slow *consumer* stalling everybody: media leaves the
//! engine through a bounded per-session queue with `try_send`, and a per-session
//! *forwarder* task awaits the pipeline's own (bounded) sink. If a pipeline falls more than
//! [`WhipConfig::event_buffer`] events behind, its frames are dropped (counted in
//! [`SessionStats`]) and video resumes on a keyframe; other sessions never notice.
//!
//! ## Lifecycle of a session
//!
//! The HTTP handler ([`super::http`]) checks the offer, authorises the publisher, builds the
//! `Rtc` (ICE-lite, H.264 + Opus only, our host candidate), creates the answer and hands the
//! `Rtc` to the engine — before the answer is sent, so the engine already knows the ufrag
//! when the first STUN request arrives. The session ends, and its sink receives exactly one
//! [`MediaEvent::End`] (last), when the publisher `DELETE`s the resource, closes the peer
//! connection (DTLS close_notify), stops sending for [`WhipConfig::idle_timeout`] (ICE
//! consent checks count as traffic), never connects within
//! [`WhipConfig::connect_timeout`], ICE reports `Disconnected`, the pipeline drops its
//! receiver, or the server shuts down.
//!
//! Timers are str0m's: the engine sleeps until the earliest `Output::Timeout` of any
//! session (or its idle deadline) and feeds `Input::Timeout` to the sessions that are due.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Input, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::frames::{Timeline, VideoGate};
use super::session::{Session, Window, forward};
use crate::publish::{Authoriser, PublishSink};

/// Settings of the WHIP endpoint and its media socket.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// The UDP media socket. Port 0 picks a free port (tests); the node uses a fixed one.
    /// Must be a specific address unless [`WhipConfig::advertise_ip`] is set.
    pub bind: SocketAddr,
    /// The address publishers should send to, when it is not the bound one (1:1 NAT such
    /// as an AWS public IP, or binding `0.0.0.0`). Advertised as our only host candidate.
    pub advertise_ip: Option<IpAddr>,
    /// From the answer to ICE + DTLS being up.
    pub connect_timeout: Duration,
    /// Longest silence (no datagram at all) from a connected publisher.
    pub idle_timeout: Duration,
    /// Longest the authoriser may take; past it the publish is refused with 503.
    pub authorise_timeout: Duration,
    /// Longest the forwarder waits to hand remaining events and End to a full sink on
    /// shutdown.
    pub end_timeout: Duration,
    /// Concurrent sessions (including ones being set up); more get 503.
    pub max_sessions: usize,
    /// Largest accepted SDP offer.
    pub max_offer_bytes: usize,
    /// Per-session queue between the engine and the pipeline's sink (events, ~80/s).
    pub event_buffer: usize,
    /// How often str0m reports statistics, and [`SessionStats`] are refreshed.
    pub stats_interval: Duration,
}

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_ip: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            authorise_timeout: Duration::from_secs(10),
            end_timeout: Duration::from_secs(5),
            max_sessions: 500,
            max_offer_bytes: 64 * 1024,
            event_buffer: 1024,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// A snapshot of one session's transport and media counters, refreshed every
/// [`WhipConfig::stats_interval`]. Poll with [`WhipHandle::sessions`] or
/// [`WhipHandle::stream_stats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    pub session_id: String,
    pub stream_id: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Round-trip time: RTCP XR (RRTR/DLRR) of the video (else audio) stream when the
    /// publisher answers it, else str0m's peer RTT. `None` until measured.
    pub rtt_ms: Option<f64>,
    /// Fraction (0..=1) of RTP packets lost in the last receiver-report interval, video
    /// stream (else audio). `None` until the first report.
    pub packet_loss: Option<f64>,
    /// RTP packets received, all streams, retransmissions included.
    pub packets_received: u64,
    /// Frame payload bytes received (video + audio, depacketized).
    pub bytes_received: u64,
    /// Frame payload bitrate over the last interval.
    pub bitrate_kbps: f64,
    /// Video frames per second over the last interval (received, dropped or not).
    pub fps: f64,
    /// Video frames handed to the pipeline.
    pub video_frames: u64,
    /// Of which keyframes.
    pub keyframes: u64,
    /// Audio frames handed to the pipeline.
    pub audio_frames: u64,
    /// Video frames not handed on: before the first keyframe, after packet loss until the
    /// next keyframe, or because the pipeline was too far behind.
    pub dropped_frames: u64,
    /// Audio frames not handed on because the pipeline was too far behind.
    pub dropped_audio_frames: u64,
    /// Keyframe requests (PLI) sent.
    pub keyframe_requests: u64,
    /// NACKs sent (str0m's count).
    pub nacks_sent: u64,
}

/// Why a session ended (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EndReason {
    Deleted,
    PeerClosed,
    IceDisconnected,
    IdleTimeout,
    ConnectTimeout,
    SinkClosed,
    Rtc(String),
    Shutdown,
}

pub(crate) enum Command {
    Add(Box<NewSession>),
    Delete {
        stream_id: String,
        session_id: String,
        reply: oneshot::Sender<bool>,
    },
}

/// An authorised, negotiated session on its way from the HTTP handler to the engine.
pub(crate) struct NewSession {
    pub id: String,
    pub stream_id: String,
    pub rtc: Rtc,
    pub sink: PublishSink,
    pub slot: SlotGuard,
}

/// One reserved place under [`WhipConfig::max_sessions`], released on drop.
#[derive(Debug)]
pub(crate) struct SlotGuard(Arc<Shared>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct Shared {
    pub config: WhipConfig,
    pub authoriser: Arc<dyn Authoriser>,
    pub commands: mpsc::Sender<Command>,
    /// Our host candidate: the address in every answer.
    pub candidate: SocketAddr,
    pub udp_addr: SocketAddr,
    active: AtomicUsize,
    stats: Mutex<HashMap<String, SessionStats>>,
    /// Test hook: incoming RTP packets (SRTP; the header is in the clear) for which this
    /// returns true are dropped, to make a real browser's stream lose packets for good.
    #[cfg(test)]
    pub drop_rtp: Mutex<Option<DropFilter>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("candidate", &self.candidate)
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the HTTP side and the lead hold on to: submits sessions to the engine and reads
/// their statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WhipHandle {
    pub(crate) shared: Arc<Shared>,
}

impl WhipHandle {
    /// The axum routes of the WHIP endpoint (see [`super::router`]).
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        super::http::router(self.clone())
    }

    /// The bound UDP media socket.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    /// The host candidate put in answers (the advertised address).
    pub fn candidate_addr(&self) -> SocketAddr {
        self.shared.candidate
    }

    /// Statistics of every live session.
    pub fn sessions(&self) -> Vec<SessionStats> {
        let stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<SessionStats> = stats.values().cloned().collect();
        all.sort_by_key(|s| s.started_at);
        all
    }

    /// Statistics of the newest live session of one stream.
    pub fn stream_stats(&self, stream_id: &str) -> Option<SessionStats> {
        self.sessions()
            .into_iter()
            .rev()
            .find(|s| s.stream_id == stream_id)
    }

    /// Reserves a session slot, or `None` when [`WhipConfig::max_sessions`] are in use.
    pub(crate) fn reserve(&self) -> Option<SlotGuard> {
        let before = self.shared.active.fetch_add(1, Ordering::AcqRel);
        let guard = SlotGuard(self.shared.clone());
        if before >= self.shared.config.max_sessions {
            drop(guard);
            return None;
        }
        Some(guard)
    }
}

/// The WHIP media server: owns the UDP socket and runs the engine. See the module docs.
pub struct WhipServer {
    socket: UdpSocket,
    handle: WhipHandle,
    commands: mpsc::Receiver<Command>,
}

impl fmt::Debug for WhipServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhipServer")
            .field("udp_addr", &self.handle.shared.udp_addr)
            .field("candidate", &self.handle.shared.candidate)
            .finish_non_exhaustive()
    }
}

impl WhipServer {
    /// Binds the media socket. Serve [`WhipServer::handle`]`.router()` over HTTP and
    /// [`WhipServer::run`] the engine.
    pub async fn bind(
        config: WhipConfig,
        authoriser: Arc<dyn Authoriser>,
    ) -> io::Result<WhipServer> {
        let socket = UdpSocket::bind(config.bind).await?;
        let udp_addr = socket.local_addr()?;
        let ip = config.advertise_ip.unwrap_or(udp_addr.ip());
        let candidate = SocketAddr::new(ip, udp_addr.port());
        if ip.is_unspecified() || Candidate::host(candidate, "udp").is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "WHIP cannot advertise {candidate} to publishers: bind a specific address \
                     or set advertise_ip"
                ),
            ));
        }
        let (commands, rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            config,
            authoriser,
            commands,
            candidate,
            udp_addr,
            active: AtomicUsize::new(0),
            stats: Mutex::new(HashMap::new()),
            #[cfg(test)]
            drop_rtp: Mutex::new(None),
        });
        Ok(WhipServer {
            socket,
            handle: WhipHandle { shared },
            commands: rx,
        })
    }

    pub fn handle(&self) -> WhipHandle {
        self.handle.clone()
    }

    /// The bound UDP media socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.shared.udp_addr
    }

    /// Runs the engine until `shutdown` turns `true` (or its sender is dropped), then ends
    /// every session (End to each sink) and returns once all forwarders are done.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let WhipServer {
            socket,
            handle,
            mut commands,
        } = self;
        let mut engine = Engine {
            socket,
            shared: handle.shared,
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            forwarders: JoinSet::new(),
            next_wake: Instant::now(),
        };
        tracing::info!(
            udp = %engine.shared.udp_addr,
            candidate = %engine.shared.candidate,
            "whip media engine running"
        );
        // WebRTC peers keep datagrams under the path MTU; 4 KiB leaves room for odd ones.
        let mut buf = vec![0u8; 4096];
        let mut commands_open = true;
        loop {
            tokio::select! {
                biased;
                () = wait_shutdown(&mut shutdown) => break,
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => engine.command(cmd, &shutdown),
                    None => commands_open = false,
                },
                received = engine.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => engine.datagram(&buf[..n], source),
                    Err(e) => {
                        // ICMP errors surface here on some systems; never fatal for the
                        // socket, but do not spin on a persistent one.
                        tracing::debug!(error = %e, "whip udp receive failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                },
                () = tokio::time::sleep_until(engine.next_wake) => {}
                Some(done) = engine.forwarders.join_next(), if !engine.forwarders.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "whip forwarder task failed");
                    }
                }
            }
            if Instant::now() >= engine.next_wake {
                engine.timeouts();
            }
        }
        tracing::info!(
            sessions = engine.sessions.len(),
            "whip media engine shutting down"
        );
        let ids: Vec<String> = engine.sessions.keys().cloned().collect();
        for id in ids {
            engine.end(&id, EndReason::Shutdown);
        }
        while let Some(done) = engine.forwarders.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "whip forwarder task failed");
            }
        }
    }
}

/// Resolves when shutdown is requested; a dropped sender counts as a request.
pub(super) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

struct Engine {
    socket: UdpSocket,
    shared: Arc<Shared>,
    sessions: HashMap<String, Session>,
    /// Last session that accepted traffic from a remote address: checked first, so the
    /// linear `accepts()` scan only runs for new addresses.
    by_addr: HashMap<SocketAddr, String>,
    forwarders: JoinSet<()>,
    /// When [`Engine::timeouts`] must run next: the earliest deadline of any session. Kept
    /// up to date per packet in O(1) (a packet can only move str0m's timeout earlier, or
    /// our idle deadline later), so the O(sessions) scan runs on timer ticks only.
    next_wake: Instant,
}

impl Engine {
    fn command(&mut self, cmd: Command, shutdown: &watch::Receiver<bool>) {
        match cmd {
            Command::Add(new) => self.add(*new, shutdown.clone()),
            Command::Delete {
                stream_id,
                session_id,
                reply,
            } => {
                let found = self
                    .sessions
                    .get(&session_id)
                    .is_some_and(|s| s.stream_id == stream_id);
                if found {
                    self.end(&session_id, EndReason::Deleted);
                }
                let _ = reply.send(found);
            }
        }
    }

    fn add(&mut self, new: NewSession, shutdown: watch::Receiver<bool>) {
        let NewSession {
            id,
            stream_id,
            rtc,
            sink,
            slot,
        } = new;
        let label = sink.label.clone().unwrap_or_else(|| stream_id.clone());
        let (events, rx) = mpsc::channel(self.shared.config.event_buffer.max(16));
        let span = tracing::info_span!("whip", stream = %label, session = %short(&id));
        self.forwarders
            .spawn(forward(rx, sink, self.shared.config.end_timeout, shutdown).instrument(span));
        let now = Instant::now();
        let stats = SessionStats {
            session_id: id.clone(),
            stream_id: stream_id.clone(),
            started_at: Utc::now(),
            updated_at: Utc::now(),
            connected: false,
            rtt_ms: None,
            packet_loss: None,
            packets_received: 0,
            bytes_received: 0,
            bitrate_kbps: 0.0,
            fps: 0.0,
            video_frames: 0,
            keyframes: 0,
            audio_frames: 0,
            dropped_frames: 0,
            dropped_audio_frames: 0,
            keyframe_requests: 0,
            nacks_sent: 0,
        };
        let mut session = Session {
            id: id.clone(),
            stream_id,
            label,
            rtc,
            events,
            _slot: slot,
            created: now,
            last_packet: None,
            next_timeout: now,
            connected: false,
            ice_up: false,
            ended: None,
            publish_due: true,
            sent_audio_config: false,
            kinds: HashMap::new(),
            video: None,
            audio: None,
            timeline: Timeline::default(),
            gate: VideoGate::default(),
            stats,
            window: Window {
                at: now,
                bytes: 0,
                frames: 0,
            },
            ingress: HashMap::new(),
            peer_rtt: None,
        };
        tracing::info!(stream = %session.label, session = %short(&id), "whip session added");
        // Drain what accept_offer queued (str0m's "mutate, then drain" rule).
        session.drain(&self.socket);
        self.next_wake = self.next_wake.min(session.deadline(&self.shared.config));
        self.sessions.insert(id.clone(), session);
        self.settle(&id);
    }

    fn datagram(&mut self, data: &[u8], source: SocketAddr) {
        #[cfg(test)]
        if is_rtp(data) {
            let filter = self
                .shared
                .drop_rtp
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if filter.as_ref().is_some_and(|drop| drop(data)) {
                return;
            }
        }
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return; // Not STUN/DTLS/RTP/RTCP: not ours to look at.
        };
        let now = Instant::now();
        let input = Input::Receive(
            now.into_std(),
            Receive {
                proto: Protocol::Udp,
                source,
                // One socket, one candidate: everything arriving is addressed to it (also
                // when bound to 0.0.0.0 or behind 1:1 NAT, where the real destination
                // differs).
                destination: self.shared.candidate,
                contents,
            },
        );
        let cached = self
            .by_addr
            .get(&source)
            .filter(|id| {
                self.sessions
                    .get(*id)
                    .is_some_and(|s| s.rtc.accepts(&input))
            })
            .cloned();
        let id = match cached {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .sessions
                    .iter()
                    .find(|(_, s)| s.rtc.accepts(&input))
                    .map(|(id, _)| id.clone())
                else {
                    // Common for a moment: STUN for a session that just ended, or that
                    // the command channel has not delivered yet (the browser retries).
                    tracing::trace!(%source, "whip datagram for no session");
                    return;
                };
                self.by_addr.insert(source, id.clone());
                id
            }
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.last_packet = Some(now);
        if let Err(e) = session.rtc.handle_input(input) {
            session.ended = Some(EndReason::Rtc(e.to_string()));
        } else {
            session.drain(&self.socket);
        }
        self.next_wake = self.next_wake.min(session.next_timeout);
        self.settle(&id);
    }

    /// Feeds due str0m timeouts, enforces our own deadlines, and plans the next wake-up.
    fn timeouts(&mut self) {
        let now = Instant::now();
        let config = &self.shared.config;
        let mut next = now + Duration::from_secs(1);
        let mut due = Vec::new();
        for (id, s) in &mut self.sessions {
            if s.ended.is_none() {
                if s.connected {
                    let last = s.last_packet.unwrap_or(s.created);
                    if now.saturating_duration_since(last) >= config.idle_timeout {
                        s.ended = Some(EndReason::IdleTimeout);
                    }
                } else if now.saturating_duration_since(s.created) >= config.connect_timeout {
                    s.ended = Some(EndReason::ConnectTimeout);
                }
            }
            if s.ended.is_none() && s.next_timeout <= now {
                if let Err(e) = s.rtc.handle_input(Input::Timeout(now.into_std())) {
                    s.ended = Some(EndReason::Rtc(e.to_string()));
                } else {
                    s.drain(&self.socket);
                }
            }
            if s.publish_due || s.ended.is_some() {
                due.push(id.clone());
            }
            next = next.min(s.deadline(config));
        }
        self.next_wake = next;
        for id in due {
            self.settle(&id);
        }
    }

    /// Publishes fresh stats, and ends the session if something ended it.
    fn settle(&mut self, id: &str) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if std::mem::take(&mut s.publish_due) {
            self.shared
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(s.id.clone(), s.stats.clone());
        }
        if let Some(reason) = s.ended.clone() {
            self.end(id, reason);
        }
    }

    /// Ends a session: last words to the peer (RTCP BYE, DTLS close_notify), then the
    /// session's queue closes and its forwarder delivers End.
    fn end(&mut self, id: &str, reason: EndReason) {
        let Some(mut s) = self.sessions.remove(id) else {
            return;
        };
        self.by_addr.retain(|_, v| v != id);
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if s.rtc.is_alive() && !matches!(reason, EndReason::Rtc(_)) {
            s.ended = Some(reason.clone());
            if s.rtc.close().is_ok() {
                s.drain(&self.socket);
            }
            s.rtc.disconnect();
        }
        let unexpected = matches!(
            reason,
            EndReason::Rtc(_) | EndReason::ConnectTimeout | EndReason::IdleTimeout
        );
        if unexpected {
            tracing::warn!(
                stream = %s.label,
                session = %short(id),
                ?reason,
                video_frames = s.stats.video_frames,
                audio_frames = s.stats.audio_frames,
                "whip session ended"
            );
        } else {
            tracing::info!(
                stream = %s.label,
                session = %short(id),
                ?reason,
                video_frames = s.stats.video_frames,
                audio_frames = s.stats.audio_frames,
                "whip session ended"
            );
        }
        // Dropping `s` drops the queue's sender: the forwarder sends End after the rest.
    }
}

#[cfg(test)]
pub(crate) type DropFilter = Box<dyn Fn(&[u8]) -> bool + Send>;

/// RTP, not RTCP (RFC 5761 §4: RTCP packet types 192-223 sit where RTP has M + PT).
#[cfg(test)]
fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && (128..192).contains(&data[0]) && !(192..224).contains(&data[1])
}

/// Session ids are 128-bit capabilities; logs get a prefix.
pub(super) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
