//! The RTMP publish session: a sans-IO state machine from the first handshake byte to the
//! end of the publish.
//!
//! Bytes in ([`Session::handle_input`]); bytes out ([`Session::poll_output`]) and events out
//! ([`Session::poll_event`]). The owner does the socket, the clock (timeouts) and the
//! authorisation: when the client sends `publish(streamKey)` the session emits
//! [`SessionEvent::PublishRequested`] and stops parsing until the owner calls
//! [`Session::accept_publish`] or [`Session::reject_publish`].
//!
//! Command flow (what OBS's librtmp and ffmpeg send, and what they wait for):
//! `connect` → Window Ack Size, Set Peer Bandwidth, Set Chunk Size and `_result`
//! (NetConnection.Connect.Success); `releaseStream`/`FCPublish` → `_result`;
//! `createStream` → `_result` with stream id 1 (librtmp reads it from the 4th value);
//! `publish` → authorisation → Stream Begin + `onStatus` NetStream.Publish.Start, or
//! `onStatus` level `error` NetStream.Publish.BadName/Unauthorized/Failed and close (ffmpeg
//! fails on level `error`; librtmp fails when the connection then closes).
//!
//! Invariants:
//! - No media leaves the session before the owner accepted the publish; media, metadata and
//!   End go out in arrival order, End at most once and last.
//! - Any malformed input (handshake, chunking, AMF, FLV, out-of-order commands) is a
//!   [`SessionError`]; the session is then closed and ignores further input. Never a panic.
//! - The stream key only exists inside [`StreamKey`], whose `Debug` is redacted, and is
//!   never part of an error message.
//! - Memory is bounded by [`Limits`] plus [`SessionConfig::max_pending_bytes`] of unparsed
//!   input held while the authorisation is pending.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Value};
use super::chunk::{ChunkDemuxer, ChunkMuxer, Limits, Message, msg_type};
use super::flv::{self, FlvDemuxer};
use super::handshake::{Handshake, HandshakeStatus};
use crate::media::MediaEvent;
use crate::publish::{Refusal, StreamKey};

/// Chunk stream for protocol control messages (spec-mandated).
const CSID_CONTROL: u32 = 2;
/// Chunk stream for NetConnection command replies.
const CSID_COMMAND: u32 = 3;
/// Chunk stream for NetStream status messages.
const CSID_STREAM: u32 = 5;
/// The only message stream we hand out: one publish per connection.
const PUBLISH_STREAM_ID: f64 = 1.0;
/// Longest app name / stream key we look at; real ones are tens of bytes.
const MAX_NAME_LEN: usize = 1024;

/// Per-session settings. Defaults suit OBS and ffmpeg.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub limits: Limits,
    /// Window Acknowledgement Size and Set Peer Bandwidth we announce.
    pub window_ack_size: u32,
    /// Chunk size for what we send (replies are small; 4096 keeps them one chunk).
    pub out_chunk_size: u32,
    /// Most unparsed bytes held while waiting for the authorisation decision.
    pub max_pending_bytes: usize,
    /// Seeds the handshake filler.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            window_ack_size: 5_000_000,
            out_chunk_size: 4096,
            max_pending_bytes: 8 * 1024 * 1024,
            seed: 0x5EED_F121,
        }
    }
}

/// The `onStatus` code and description a refused publisher sees (see [`Refusal`]).
fn refusal_status(refusal: &Refusal) -> (&'static str, String) {
    match refusal {
        Refusal::BadKey => ("NetStream.Publish.BadName", "Invalid stream key.".into()),
        Refusal::AlreadyPublishing => (
            "NetStream.Publish.BadName",
            "Stream is already being published.".into(),
        ),
        Refusal::NotAllowed(why) => ("NetStream.Publish.Unauthorized", why.clone()),
        Refusal::HeldElsewhere => (
            "NetStream.Publish.BadName",
            "Stream is being published on another ingest node.".into(),
        ),
        Refusal::NodeFull => (
            "NetStream.Publish.Failed",
            "This ingest node takes no new streams now; reconnect to reach another.".into(),
        ),
        Refusal::Unavailable => (
            "NetStream.Publish.Failed",
            "Ingest is unavailable; try again.".into(),
        ),
    }
}

/// What the session asks of its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The client wants to publish: decide with `accept_publish` / `reject_publish`.
    PublishRequested { app: String, stream_key: StreamKey },
    /// Media for the accepted publish, in order; [`MediaEvent::End`] comes last.
    Media(MediaEvent),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Handshake(#[from] super::handshake::HandshakeError),
    #[error(transparent)]
    Chunk(#[from] super::chunk::ChunkError),
    #[error("malformed AMF0 in a command or data message: {0}")]
    Amf(#[from] amf0::AmfError),
    #[error(transparent)]
    Flv(#[from] flv::FlvError),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("more than {0} bytes arrived while the publish was being authorised")]
    PendingOverflow(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    /// Handshake done, waiting for `connect`.
    AwaitConnect,
    /// `connect` answered; `createStream`/`publish` expected.
    Connected,
    /// `publish` received, owner deciding; input is buffered, not parsed.
    Authorising {
        stream_id: u32,
    },
    Publishing {
        stream_id: u32,
    },
    /// FCUnpublish/closeStream received: End sent; media is ignored, commands are read
    /// (deleteStream closes).
    Unpublished,
    /// Refused, failed, deleted or finished: ignores input.
    Closed,
}

/// Extends 32-bit wrapping RTMP timestamps to i64, tolerating small backward steps
/// (audio and video interleave with slightly out-of-order times).
#[derive(Debug, Default)]
struct Timeline {
    last: Option<(u32, i64)>,
}

impl Timeline {
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// One RTMP connection's protocol state. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    handshake: Handshake,
    demux: ChunkDemuxer,
    mux: ChunkMuxer,
    out: BytesMut,
    events: VecDeque<SessionEvent>,
    app: String,
    flv: FlvDemuxer,
    timeline: Timeline,
    publishing_started: bool,
    end_emitted: bool,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session {
            handshake: Handshake::new(config.seed),
            demux: ChunkDemuxer::new(config.limits, config.window_ack_size),
            mux: ChunkMuxer::default(),
            state: State::Handshake,
            out: BytesMut::new(),
            events: VecDeque::new(),
            app: String::new(),
            flv: FlvDemuxer::default(),
            timeline: Timeline::default(),
            publishing_started: false,
            end_emitted: false,
            config,
        }
    }

    /// Feeds bytes received from the client. On error the session is closed; pending
    /// output and events remain to be drained, then call [`finish`](Self::finish).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let r = self.input(data);
        if r.is_err() {
            self.state = State::Closed;
        }
        r
    }

    fn input(&mut self, data: &[u8]) -> Result<(), SessionError> {
        match self.state {
            State::Closed => return Ok(()),
            State::Handshake => match self.handshake.feed(data)? {
                HandshakeStatus::InProgress { reply } => {
                    self.out.extend_from_slice(&reply);
                    return Ok(());
                }
                HandshakeStatus::Done { reply, rest } => {
                    self.out.extend_from_slice(&reply);
                    self.state = State::AwaitConnect;
                    self.demux.push(&rest);
                }
            },
            _ => self.demux.push(data),
        }
        self.process()
    }

    /// Parses buffered input until it runs out or the session must wait for the owner.
    fn process(&mut self) -> Result<(), SessionError> {
        loop {
            match self.state {
                State::Authorising { .. } => {
                    let pending = self.demux.unparsed_len();
                    if pending > self.config.max_pending_bytes {
                        return Err(SessionError::PendingOverflow(self.config.max_pending_bytes));
                    }
                    break;
                }
                State::Closed | State::Handshake => break,
                // Unpublished still reads commands: deleteStream usually follows.
                State::AwaitConnect
                | State::Connected
                | State::Publishing { .. }
                | State::Unpublished => {}
            }
            match self.demux.next_message()? {
                Some(msg) => self.on_message(msg)?,
                None => break,
            }
        }
        if let Some(seq) = self.demux.take_ack() {
            self.send(
                CSID_CONTROL,
                msg_type::ACKNOWLEDGEMENT,
                0,
                &seq.to_be_bytes(),
            );
        }
        Ok(())
    }

    /// Everything to send to the client so far, if anything.
    pub fn poll_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    pub fn is_handshake_done(&self) -> bool {
        self.state != State::Handshake
    }

    pub fn is_awaiting_authorisation(&self) -> bool {
        matches!(self.state, State::Authorising { .. })
    }

    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing { .. })
    }

    /// True once nothing more will be read: the owner flushes output and closes.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The app name from `connect` (may be empty).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Accepts the pending publish: tells the client to start, then parses whatever it
    /// already sent (which may produce media events or an error).
    pub fn accept_publish(&mut self) -> Result<(), SessionError> {
        let State::Authorising { stream_id } = self.state else {
            return Err(SessionError::Protocol(
                "accept_publish without a pending publish",
            ));
        };
        let mut begin = BytesMut::new();
        begin.put_u16(0); // Stream Begin
        begin.put_u32(stream_id);
        self.send(CSID_CONTROL, msg_type::USER_CONTROL, 0, &begin);
        self.on_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            "Publishing started.",
        );
        self.state = State::Publishing { stream_id };
        self.publishing_started = true;
        let r = self.process();
        if r.is_err() {
            self.state = State::Closed;
        }
        r
    }

    /// Refuses the pending publish with an `onStatus` error; the session closes.
    pub fn reject_publish(&mut self, refusal: &Refusal) {
        let stream_id = match self.state {
            State::Authorising { stream_id } => stream_id,
            _ => 1,
        };
        let (code, description) = refusal_status(refusal);
        self.on_status(stream_id, "error", code, &description);
        self.state = State::Closed;
    }

    /// The connection is ending (EOF, error, timeout, shutdown): queues End if media was
    /// flowing and End was not sent yet. Idempotent.
    pub fn finish(&mut self) {
        self.emit_end();
        self.state = State::Closed;
    }

    fn emit_end(&mut self) {
        if self.publishing_started && !self.end_emitted {
            self.end_emitted = true;
            self.events.push_back(SessionEvent::Media(MediaEvent::End));
        }
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        self.mux
            .write(&mut self.out, csid, 0, type_id, stream_id, payload);
    }

    fn send_command(&mut self, csid: u32, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(csid, msg_type::COMMAND_AMF0, stream_id, &body);
    }

    fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            CSID_STREAM,
            stream_id,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", Amf0Value::string(level)),
                    ("code", Amf0Value::string(code)),
                    ("description", Amf0Value::string(description)),
                ]),
            ],
        );
    }

    fn result(&mut self, txn: f64, values: [Amf0Value; 2]) {
        let [a, b] = values;
        self.send_command(
            CSID_COMMAND,
            0,
            &[Amf0Value::string("_result"), Amf0Value::Number(txn), a, b],
        );
    }

    fn on_message(&mut self, msg: Message) -> Result<(), SessionError> {
        match msg.type_id {
            msg_type::COMMAND_AMF0 => self.on_command(&msg.payload, msg.stream_id),
            // AMF3 command/data: a format byte, then (from publishers) plain AMF0 values.
            msg_type::COMMAND_AMF3 => {
                self.on_command(msg.payload.get(1..).unwrap_or_default(), msg.stream_id)
            }
            msg_type::DATA_AMF0 => self.on_data(&msg.payload),
            msg_type::DATA_AMF3 => self.on_data(msg.payload.get(1..).unwrap_or_default()),
            msg_type::AUDIO | msg_type::VIDEO => {
                self.on_media(msg.type_id, msg.timestamp, &msg.payload)
            }
            msg_type::AGGREGATE => {
                if !self.is_publishing() {
                    return Ok(());
                }
                for part in flv::split_aggregate(&msg.payload, msg.timestamp)? {
                    match part.type_id {
                        msg_type::AUDIO | msg_type::VIDEO => {
                            self.on_media(part.type_id, part.timestamp, &part.payload)?
                        }
                        msg_type::DATA_AMF0 => self.on_data(&part.payload)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            msg_type::USER_CONTROL => {
                // Ping Request (6) → Ping Response (7) with the same timestamp; the rest
                // (Set Buffer Length, ...) concern players.
                if let [0, 6, t @ ..] = &msg.payload[..]
                    && t.len() >= 4
                {
                    let mut pong = BytesMut::new();
                    pong.put_u16(7);
                    pong.put_slice(&t[..4]);
                    self.send(CSID_CONTROL, msg_type::USER_CONTROL, 0, &pong);
                }
                Ok(())
            }
            // Shared objects and anything unknown: not used by publishers.
            _ => Ok(()),
        }
    }

    fn on_media(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &Bytes,
    ) -> Result<(), SessionError> {
        if !self.is_publishing() {
            // Before publish was accepted there is no consumer; after End there is none
            // either. Publishers do not send media before Publish.Start.
            return Ok(());
        }
        let ts = self.timeline.extend(timestamp);
        let ev = if type_id == msg_type::VIDEO {
            self.flv.video(ts, payload)?
        } else {
            self.flv.audio(ts, payload)?
        };
        if let Some(ev) = ev {
            self.events.push_back(SessionEvent::Media(ev));
        }
        Ok(())
    }

    fn on_data(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        if !self.is_publishing() {
            return Ok(());
        }
        let values = amf0::decode_all(payload)?;
        let mut it = values.iter().peekable();
        if it.peek().and_then(|v| v.as_str()) == Some("@setDataFrame") {
            it.next();
        }
        if it.next().and_then(Amf0Value::as_str) != Some("onMetaData") {
            // onTextData, onCuePoint, ...: nothing the pipeline uses.
            return Ok(());
        }
        let Some(meta) = it.next() else {
            return Ok(());
        };
        let num = |k: &str| {
            meta.get(k)
                .and_then(Amf0Value::as_f64)
                .filter(|n| n.is_finite() && *n > 0.0)
        };
        // `as` saturates: an absurd width becomes u32::MAX rather than wrapping.
        let dim = |k: &str| num(k).map(|n| n.round() as u32);
        self.events
            .push_back(SessionEvent::Media(MediaEvent::Metadata {
                width: dim("width"),
                height: dim("height"),
                fps: num("framerate").or_else(|| num("fps")),
                video_kbps: num("videodatarate"),
            }));
        Ok(())
    }

    fn on_command(&mut self, payload: &[u8], stream_id: u32) -> Result<(), SessionError> {
        let values = amf0::decode_all(payload)?;
        let Some(name) = values.first().and_then(Amf0Value::as_str) else {
            return Err(SessionError::Protocol(
                "command message without a command name",
            ));
        };
        let txn = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
        tracing::trace!(command = name, txn, "rtmp command");
        match name {
            "connect" => self.on_connect(txn, values.get(2)),
            "releaseStream" | "FCPublish" => {
                self.require_connected()?;
                if txn != 0.0 {
                    self.result(txn, [Amf0Value::Null, Amf0Value::Undefined]);
                }
                Ok(())
            }
            "createStream" => {
                self.require_connected()?;
                self.result(txn, [Amf0Value::Null, Amf0Value::Number(PUBLISH_STREAM_ID)]);
                Ok(())
            }
            "publish" => self.on_publish(stream_id, values.get(3)),
            "FCUnpublish" | "closeStream" => {
                if self.is_publishing() {
                    self.emit_end();
                    self.state = State::Unpublished;
                }
                Ok(())
            }
            "deleteStream" => {
                // The stream is gone; one publish per connection, so the connection is done.
                self.emit_end();
                self.state = State::Closed;
                Ok(())
            }
            "play" | "play2" => Err(SessionError::Protocol(
                "playback is not offered on the ingest endpoint",
            )),
            // getStreamLength, _checkbw, ping, ...: harmless, nothing to answer.
            _ => Ok(()),
        }
    }

    fn require_connected(&self) -> Result<(), SessionError> {
        match self.state {
            State::Connected => Ok(()),
            State::AwaitConnect => Err(SessionError::Protocol("command before connect")),
            _ => Err(SessionError::Protocol("stream command after publish")),
        }
    }

    fn on_connect(&mut self, txn: f64, cmd: Option<&Amf0Value>) -> Result<(), SessionError> {
        if self.state != State::AwaitConnect {
            return Err(SessionError::Protocol("connect sent twice"));
        }
        let app = cmd
            .and_then(|c| c.get("app"))
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        if app.len() > MAX_NAME_LEN {
            return Err(SessionError::Protocol("app name too long"));
        }
        // "live/", "live?x=y": the app is the path before any query or trailing slash.
        self.app = app
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        let encoding = cmd
            .and_then(|c| c.get("objectEncoding"))
            .and_then(Amf0Value::as_f64)
            .unwrap_or(0.0);

        let window = self.config.window_ack_size.to_be_bytes();
        self.send(CSID_CONTROL, msg_type::WINDOW_ACK_SIZE, 0, &window);
        let mut bw = BytesMut::from(&window[..]);
        bw.put_u8(2); // dynamic limit
        self.send(CSID_CONTROL, msg_type::SET_PEER_BANDWIDTH, 0, &bw);
        let chunk_size = self.config.out_chunk_size.clamp(128, 65_536);
        self.send(
            CSID_CONTROL,
            msg_type::SET_CHUNK_SIZE,
            0,
            &chunk_size.to_be_bytes(),
        );
        self.mux.set_chunk_size(chunk_size as usize);
        self.result(
            txn,
            [
                Amf0Value::object([
                    ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
                    ("capabilities", Amf0Value::Number(31.0)),
                ]),
                Amf0Value::object([
                    ("level", Amf0Value::string("status")),
                    ("code", Amf0Value::string("NetConnection.Connect.Success")),
                    ("description", Amf0Value::string("Connection succeeded.")),
                    ("objectEncoding", Amf0Value::Number(encoding)),
                ]),
            ],
        );
        self.state = State::Connected;
        Ok(())
    }

    fn on_publish(&mut self, stream_id: u32, name: Option<&Amf0Value>) -> Result<(), SessionError> {
        match self.state {
            State::Connected => {}
            State::AwaitConnect => return Err(SessionError::Protocol("publish before connect")),
            _ => return Err(SessionError::Protocol("publish sent twice")),
        }
        let key = name.and_then(Amf0Value::as_str).unwrap_or_default();
        if key.is_empty() || key.len() > MAX_NAME_LEN {
            // No key to check: refuse without bothering the owner.
            self.state = State::Authorising { stream_id };
            self.reject_publish(&Refusal::BadKey);
            return Ok(());
        }
        self.state = State::Authorising { stream_id };
        self.events.push_back(SessionEvent::PublishRequested {
            app: self.app.clone(),
            stream_key: StreamKey::new(key),
        });
        Ok(())
    }
}

/// The part of an app name that is safe to log: the first path segment, capped. (A user
/// who pasted `live/<key>` into the server field would otherwise leak the key into logs.)
pub fn loggable_app(app: &str) -> &str {
    let first = app.split(['/', '?']).next().unwrap_or_default();
    let mut end = first.len().min(64);
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    &first[..end]
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
