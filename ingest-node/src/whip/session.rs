//! One WHIP publisher's WebRTC session inside the engine ([`super::server`]): its str0m
//! [`Rtc`], the depacketised media it hands on, its timers and its statistics.
//!
//! Invariants: the session's sink receives media in arrival order and exactly one
//! [`MediaEvent::End`], last; media never waits on a slow pipeline here (the engine's queue
//! is `try_send`); a video track is requested a keyframe (PLI) when it starts and whenever
//! depacketisation loses continuity, since browsers send SPS/PPS only with keyframes.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::{Event, IceConnectionState, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::frames::{Timeline, Track, VideoGate};
use super::server::{EndReason, SessionStats, SlotGuard, WhipConfig, short, wait_shutdown};
use crate::media::{AudioCodec, MediaEvent, NalFraming};
use crate::publish::PublishSink;

#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) at: Instant,
    pub(super) bytes: u64,
    pub(super) frames: u64,
}

/// Per-stream numbers from str0m's ingress stats, keyed by mid.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ingress {
    pub(super) video: bool,
    pub(super) packets: u64,
    pub(super) nacks: u64,
    pub(super) loss: Option<f32>,
    pub(super) rtt: Option<Duration>,
}

pub(super) struct Session {
    pub(super) id: String,
    pub(super) stream_id: String,
    pub(super) label: String,
    pub(super) rtc: Rtc,
    /// The engine → forwarder queue.
    pub(super) events: mpsc::Sender<MediaEvent>,
    pub(super) _slot: SlotGuard,
    pub(super) created: Instant,
    pub(super) last_packet: Option<Instant>,
    /// str0m's next `Output::Timeout`.
    pub(super) next_timeout: Instant,
    /// ICE + DTLS up (`Event::Connected`).
    pub(super) connected: bool,
    /// ICE reached Connected/Completed at least once.
    pub(super) ice_up: bool,
    pub(super) ended: Option<EndReason>,
    pub(super) sent_audio_config: bool,
    /// Media kind per mid, from the negotiation.
    pub(super) kinds: HashMap<Mid, MediaKind>,
    /// The (mid, rid) each kind is taken from: the first one seen. Further tracks or
    /// simulcast layers are ignored.
    pub(super) video: Option<(Mid, Option<Rid>)>,
    pub(super) audio: Option<(Mid, Option<Rid>)>,
    pub(super) timeline: Timeline,
    pub(super) gate: VideoGate,
    pub(super) stats: SessionStats,
    pub(super) window: Window,
    pub(super) ingress: HashMap<Mid, Ingress>,
    pub(super) peer_rtt: Option<Duration>,
    /// Stats changed: copy them to the shared map.
    pub(super) publish_due: bool,
}

impl Session {
    pub(super) fn deadline(&self, config: &WhipConfig) -> Instant {
        let own = if self.connected {
            self.last_packet.unwrap_or(self.created) + config.idle_timeout
        } else {
            self.created + config.connect_timeout
        };
        own.min(self.next_timeout)
    }

    /// Polls str0m until it only has a timeout left: transmits go out on the socket,
    /// events are handled (which may mutate the `Rtc`, e.g. a keyframe request; the loop
    /// then keeps draining, as str0m requires).
    pub(super) fn drain(&mut self, socket: &UdpSocket) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = Instant::from_std(t);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    // Non-blocking: this side only sends STUN replies, DTLS and RTCP.
                    // A full socket buffer drops the datagram, as the network could.
                    if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(error = %e, to = %t.destination, "whip udp send failed");
                    }
                }
                Ok(Output::Event(e)) => self.event(e),
                Err(e) => {
                    self.ended = Some(EndReason::Rtc(e.to_string()));
                    self.next_timeout = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }

    pub(super) fn event(&mut self, e: Event) {
        if self.ended.is_some() {
            // Closing: only last words go out, nothing new comes in.
            return;
        }
        match e {
            Event::Connected => {
                self.connected = true;
                self.stats.connected = true;
                self.publish_due = true;
                tracing::info!(stream = %self.label, session = %short(&self.id), "whip publisher connected");
                self.send_audio_config();
            }
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_up = true;
                }
                // Before the first connection, the connect timeout decides: an ICE-lite
                // agent can report Disconnected while it still waits for the first check.
                IceConnectionState::Disconnected if self.ice_up => {
                    self.ended = Some(EndReason::IceDisconnected);
                }
                _ => {}
            },
            Event::Closed => self.ended = Some(EndReason::PeerClosed),
            Event::MediaData(data) => self.media(data),
            Event::MediaAdded(added) => {
                self.kinds.insert(added.mid, added.kind);
            }
            Event::MediaIngressStats(s) => {
                let video = self.kinds.get(&s.mid) == Some(&MediaKind::Video);
                let entry = self.ingress.entry(s.mid).or_default();
                entry.video = video;
                entry.packets = s.packets;
                entry.nacks = s.nacks;
                entry.loss = s.loss.or(entry.loss);
                entry.rtt = s.rtt.or(entry.rtt);
                self.aggregate_transport();
            }
            Event::PeerStats(p) => {
                self.peer_rtt = p
                    .rtt
                    .or_else(|| {
                        p.selected_candidate_pair
                            .as_ref()
                            .and_then(|c| c.current_round_trip_time)
                    })
                    .or(self.peer_rtt);
                self.refresh_rates();
                self.aggregate_transport();
            }
            _ => {}
        }
    }

    pub(super) fn media(&mut self, data: MediaData) {
        let codec = data.params.spec().codec;
        let track = match codec {
            Codec::H264 => Track::Video,
            Codec::Opus => Track::Audio,
            // Cannot happen with our codec config; never hand on what we cannot name.
            _ => return,
        };
        let slot = match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        };
        let key = (data.mid, data.rid);
        if *slot.get_or_insert(key) != key {
            return;
        }
        let now = Instant::now();
        let ms = self.timeline.timestamp_ms(
            track,
            data.time.numer(),
            data.time.denom(),
            data.network_time,
        );
        self.stats.bytes_received += data.data.len() as u64;
        match track {
            Track::Video => {
                self.window.frames += 1;
                let out = self
                    .gate
                    .on_frame(&data.data, data.contiguous, now.into_std());
                if out.request_keyframe {
                    self.request_keyframe(data.mid, data.rid);
                }
                let Some((frame, keyframe)) = out.emit else {
                    self.stats.dropped_frames += 1;
                    return;
                };
                let event = MediaEvent::Video {
                    pts_ms: ms,
                    dts_ms: ms,
                    keyframe,
                    framing: NalFraming::AnnexB,
                    data: frame,
                };
                if self.send(event) {
                    self.stats.video_frames += 1;
                    if keyframe {
                        self.stats.keyframes += 1;
                    }
                } else {
                    self.stats.dropped_frames += 1;
                    // The pipeline missed a frame others depend on: resume on a keyframe.
                    if self.gate.force_wait(now.into_std()) {
                        self.request_keyframe(data.mid, data.rid);
                    }
                }
            }
            Track::Audio => {
                let event = MediaEvent::Audio {
                    codec: AudioCodec::Opus,
                    pts_ms: ms,
                    data: Bytes::from_owner(data.data),
                };
                if self.send(event) {
                    self.stats.audio_frames += 1;
                } else {
                    self.stats.dropped_audio_frames += 1;
                }
            }
        }
    }

    pub(super) fn request_keyframe(&mut self, mid: Mid, rid: Option<Rid>) {
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        match writer.request_keyframe(rid, KeyframeRequestKind::Pli) {
            Ok(()) => self.stats.keyframe_requests += 1,
            Err(e) => tracing::debug!(error = %e, "whip keyframe request failed"),
        }
    }

    pub(super) fn send_audio_config(&mut self) {
        if self.sent_audio_config {
            return;
        }
        self.sent_audio_config = true;
        // The queue is empty at this point: this cannot be refused for lack of room.
        self.send(MediaEvent::AudioConfig {
            codec: AudioCodec::Opus,
            config: Bytes::new(),
            sample_rate: 48_000,
            channels: 2,
        });
    }

    /// Queues an event for the forwarder. `false`: not queued (queue full, or the
    /// pipeline is gone, which ends the session).
    pub(super) fn send(&mut self, event: MediaEvent) -> bool {
        if !self.sent_audio_config {
            self.send_audio_config();
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(stream = %self.label, "whip pipeline behind; frame dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.ended = Some(EndReason::SinkClosed);
                false
            }
        }
    }

    /// Bitrate and frame rate over the window since the last call (str0m's stats tick).
    pub(super) fn refresh_rates(&mut self) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(self.window.at).as_secs_f64();
        if secs > 0.0 {
            let bytes = self.stats.bytes_received - self.window.bytes;
            self.stats.bitrate_kbps = round2(bytes as f64 * 8.0 / 1000.0 / secs);
            self.stats.fps = round2(self.window.frames as f64 / secs);
        }
        self.window = Window {
            at: now,
            bytes: self.stats.bytes_received,
            frames: 0,
        };
    }

    /// Packets, loss and RTT from the per-stream ingress stats (str0m emits those right
    /// after its peer stats, one event per stream).
    pub(super) fn aggregate_transport(&mut self) {
        let mut streams: Vec<&Ingress> = self.ingress.values().collect();
        // Video first: it carries most packets and is what loss hurts.
        streams.sort_by_key(|i| !i.video);
        self.stats.packets_received = streams.iter().map(|i| i.packets).sum();
        self.stats.nacks_sent = streams.iter().map(|i| i.nacks).sum();
        self.stats.packet_loss = streams
            .iter()
            .find_map(|i| i.loss)
            .map(|l| f64::from(l.clamp(0.0, 1.0)));
        self.stats.rtt_ms = streams
            .iter()
            .find_map(|i| i.rtt)
            .or(self.peer_rtt)
            .map(|d| round2(d.as_secs_f64() * 1000.0));
        self.stats.updated_at = Utc::now();
        self.publish_due = true;
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Moves one session's events from the engine's queue to the pipeline's sink, then
/// delivers End. Waits as long as the sink needs (the engine never does); once shutdown is
/// requested, the rest and End get [`WhipConfig::end_timeout`] in total.
pub(super) async fn forward(
    mut rx: mpsc::Receiver<MediaEvent>,
    sink: PublishSink,
    end_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    enum Step {
        Sent,
        Done,
        SinkGone,
        TimedOut,
    }
    let mut deadline: Option<Instant> = None;
    let mut delivered = 0u64;
    loop {
        // Reserve room in the sink before taking an event off the queue: both awaits are
        // cancel-safe, so a shutdown interrupting this step never loses an event.
        let step = async {
            let Ok(permit) = sink.events.reserve().await else {
                return Step::SinkGone;
            };
            match rx.recv().await {
                Some(event) => {
                    permit.send(event);
                    Step::Sent
                }
                None => Step::Done,
            }
        };
        let outcome = match deadline {
            None => tokio::select! {
                s = step => s,
                () = sink.events.closed() => Step::SinkGone,
                () = wait_shutdown(&mut shutdown) => {
                    deadline = Some(Instant::now() + end_timeout);
                    continue;
                }
            },
            Some(d) => tokio::time::timeout_at(d, step)
                .await
                .unwrap_or(Step::TimedOut),
        };
        match outcome {
            Step::Sent => delivered += 1,
            Step::Done | Step::TimedOut => break,
            Step::SinkGone => {
                tracing::info!(events = delivered, "whip sink closed by the pipeline");
                // Dropping the queue makes the engine end the session (SinkClosed).
                return;
            }
        }
    }
    drop(rx);
    let d = deadline.unwrap_or_else(|| Instant::now() + end_timeout);
    if !matches!(
        tokio::time::timeout_at(d, sink.events.send(MediaEvent::End)).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("whip sink did not take End in time");
    }
    tracing::debug!(events = delivered, "whip forwarder done");
}
