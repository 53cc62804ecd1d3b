//! The RTMP chunk stream layer: reassembles messages from interleaved chunks (incoming) and
//! splits messages into chunks (outgoing).
//!
//! Incoming, [`ChunkDemuxer`] handles basic headers with 1-, 2- and 3-byte chunk stream ids,
//! message headers of fmt 0–3, extended timestamps (also on fmt 3 chunks of a stream whose
//! last header carried one, as ffmpeg and librtmp send them), and the protocol control
//! messages that change how later bytes parse or what we owe the peer: Set Chunk Size (1),
//! Abort (2), Acknowledgement (3, ignored), Window Acknowledgement Size (5) and Set Peer
//! Bandwidth (6, ignored). Those are consumed here; every other message is returned whole.
//!
//! Invariants:
//! - Never panics on any input; every violation is a [`ChunkError`], after which the
//!   connection is unusable (the byte stream has lost framing) and must be closed.
//! - Bounded memory: incoming chunk size ≤ [`Limits::max_chunk_size`] (64 KiB; larger is an
//!   error rather than clamped, because we could not parse what follows), message length ≤
//!   [`Limits::max_message_size`], at most [`Limits::max_chunk_streams`] chunk streams, and
//!   partial payloads grow only as bytes arrive (a header declaring 8 MiB allocates nothing
//!   up front), with their sum capped by [`Limits::max_buffered_bytes`].
//! - Timestamps follow ffmpeg's reader: fmt 0 carries an absolute time, fmt 1/2 a delta, and
//!   fmt 3 starting a new message repeats the previous header's timestamp field as a delta.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Message type ids (RTMP spec §5.4, §7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk size every RTMP connection starts with, both ways.
pub const DEFAULT_CHUNK_SIZE: usize = 128;

/// Hard limits of one connection. The defaults fit every real publisher with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Set Chunk Size accepted from the peer (bytes). Larger values end the session.
    pub max_chunk_size: usize,
    /// Largest message (a whole video frame) accepted.
    pub max_message_size: usize,
    /// Most distinct chunk stream ids one connection may use (publishers use 3–6).
    pub max_chunk_streams: usize,
    /// Most bytes held in partially received messages, over all chunk streams.
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_chunk_size: 64 * 1024,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("peer set chunk size {0}, outside 1..={1}")]
    BadChunkSize(u32, usize),
    #[error("message of {0} bytes exceeds the {1}-byte limit")]
    MessageTooLarge(u32, usize),
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    #[error("chunk fmt {fmt} on chunk stream {csid} that has no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("more than {0} bytes buffered in partial messages")]
    TooMuchBuffered(usize),
    #[error("protocol control message type {0} with a {1}-byte payload")]
    ShortControlMessage(u8, usize),
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    /// Milliseconds, 32-bit wrapping as on the wire.
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    /// Absolute timestamp of the message in progress (or the last one).
    timestamp: u32,
    /// The last header's timestamp field (absolute for fmt 0, delta otherwise), reused as
    /// the delta by fmt 3 headers that start a new message.
    ts_field: u32,
    /// The last fmt 0–2 header carried an extended timestamp, so fmt 3 chunks carry one too.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Payload received so far of the message in progress; empty between messages.
    partial: Vec<u8>,
    /// True while a message is in progress (partial may still be empty for 0-length ones).
    in_progress: bool,
}

/// Incoming side of the chunk layer. Feed bytes with [`push`](Self::push), then call
/// [`next_message`](Self::next_message) until it returns `Ok(None)`.
#[derive(Debug)]
pub struct ChunkDemuxer {
    limits: Limits,
    chunk_size: usize,
    buf: BytesMut,
    streams: HashMap<u32, ChunkStream>,
    buffered: usize,
    /// Bytes received in total (for acknowledgements).
    received: u64,
    last_ack: u64,
    /// Window the peer asked for (type 5); until it does we use the one we announced.
    peer_window: Option<u32>,
    own_window: u32,
    /// Also return the control messages applied here (for client-side parsing in tests).
    pass_control: bool,
}

impl ChunkDemuxer {
    /// `own_window` is the Window Acknowledgement Size we announce to the peer; it also
    /// paces our acknowledgements until the peer sends its own (both readings of the spec
    /// exist in the wild, so acknowledging on either keeps every client happy).
    pub fn new(limits: Limits, own_window: u32) -> Self {
        ChunkDemuxer {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            buf: BytesMut::new(),
            streams: HashMap::new(),
            buffered: 0,
            received: 0,
            last_ack: 0,
            peer_window: None,
            own_window,
            pass_control: false,
        }
    }

    /// Makes [`next_message`](Self::next_message) also return the protocol control
    /// messages it applied (a client decoding our replies wants to see them).
    pub fn with_control_messages(mut self) -> Self {
        self.pass_control = true;
        self
    }

    /// Appends received bytes. Parsing happens in [`next_message`](Self::next_message).
    pub fn push(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        self.buf.extend_from_slice(data);
    }

    /// Bytes pushed but not yet parsed into chunks.
    pub fn unparsed_len(&self) -> usize {
        self.buf.len()
    }

    /// The chunk size the peer currently uses.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// If an Acknowledgement is due, its sequence number (bytes received, mod 2^32).
    pub fn take_ack(&mut self) -> Option<u32> {
        let window = u64::from(self.peer_window.unwrap_or(self.own_window).max(1));
        if self.received - self.last_ack >= window {
            self.last_ack = self.received;
            Some(self.received as u32)
        } else {
            None
        }
    }

    /// The next complete non-control message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        // Iterative on purpose: a message split into millions of 1-byte chunks must not
        // turn into recursion depth.
        loop {
            match self.next_chunk()? {
                Step::NeedMore => return Ok(None),
                Step::Partial => {}
                Step::Complete(msg) => {
                    let copy = self.pass_control.then(|| msg.clone());
                    match self.control(msg)? {
                        Some(msg) => return Ok(Some(msg)),
                        None if copy.is_some() => return Ok(copy),
                        None => {}
                    }
                }
            }
        }
    }

    /// Applies protocol control messages; returns the others.
    fn control(&mut self, msg: Message) -> Result<Option<Message>, ChunkError> {
        let be32 = |p: &Bytes| -> Result<u32, ChunkError> {
            if p.len() < 4 {
                return Err(ChunkError::ShortControlMessage(msg.type_id, p.len()));
            }
            Ok(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        };
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                // The top bit must be zero; masking it as the spec says, then range-checking.
                let size = be32(&msg.payload)? & 0x7FFF_FFFF;
                if size == 0 || size as usize > self.limits.max_chunk_size {
                    return Err(ChunkError::BadChunkSize(size, self.limits.max_chunk_size));
                }
                self.chunk_size = size as usize;
                Ok(None)
            }
            msg_type::ABORT => {
                let csid = be32(&msg.payload)?;
                if let Some(cs) = self.streams.get_mut(&csid) {
                    self.buffered -= cs.partial.len();
                    cs.partial = Vec::new();
                    cs.in_progress = false;
                }
                Ok(None)
            }
            msg_type::WINDOW_ACK_SIZE => {
                self.peer_window = Some(be32(&msg.payload)?);
                Ok(None)
            }
            // Acks of what we sent (a few hundred bytes) and bandwidth hints for a sender
            // that only sends tiny replies: nothing to do.
            msg_type::ACKNOWLEDGEMENT | msg_type::SET_PEER_BANDWIDTH => Ok(None),
            _ => Ok(Some(msg)),
        }
    }

    /// Parses one chunk if the buffer holds all of it.
    fn next_chunk(&mut self) -> Result<Step, ChunkError> {
        let b = &self.buf[..];
        let Some(&first) = b.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(Step::NeedMore),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&x), Some(&y)) => (64 + u32::from(x) + 256 * u32::from(y), 3),
                _ => return Ok(Step::NeedMore),
            },
            id => (u32::from(id), 1),
        };
        let header_len = [11usize, 7, 3, 0][fmt as usize];
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(Step::NeedMore);
        };
        let be24 = |s: &[u8]| u32::from(s[0]) << 16 | u32::from(s[1]) << 8 | u32::from(s[2]);
        let ts_field = if fmt <= 2 { Some(be24(&h[0..3])) } else { None };
        let (length, type_id) = if fmt <= 1 {
            (Some(be24(&h[3..6])), Some(h[6]))
        } else {
            (None, None)
        };
        let stream_id = if fmt == 0 {
            Some(u32::from_le_bytes([h[7], h[8], h[9], h[10]]))
        } else {
            None
        };
        pos += header_len;

        let known = self.streams.contains_key(&csid);
        if !known {
            // fmt 2/3 only make sense after a header that set length and type. A fresh
            // fmt 1 is accepted with stream id 0 (librtmp variants start streams that way).
            if fmt >= 2 {
                return Err(ChunkError::NoPreviousHeader { fmt, csid });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams(
                    self.limits.max_chunk_streams,
                ));
            }
        }
        let prev = self.streams.get(&csid);
        let prev_extended = prev.is_some_and(|p| p.extended);
        let continuing = prev.is_some_and(|p| p.in_progress);

        let has_ext = match ts_field {
            Some(f) => f == 0xFF_FFFF,
            None => prev_extended,
        };
        let ext = if has_ext {
            let Some(e) = b.get(pos..pos + 4) else {
                return Ok(Step::NeedMore);
            };
            pos += 4;
            Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
        } else {
            None
        };

        // The length this chunk's message has, to know how much payload the chunk holds.
        let msg_len = match length {
            Some(l) => l,
            None => prev.map_or(0, |p| p.length),
        };
        if msg_len as usize > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge(
                msg_len,
                self.limits.max_message_size,
            ));
        }
        // A fmt 3 chunk continues the message in progress; any other header starts a new
        // message (a half-received one on this stream is dropped, as ffmpeg's reader does).
        let continues = fmt == 3 && continuing;
        let already = if continues {
            prev.map_or(0, |p| p.partial.len())
        } else {
            0
        };
        let take = (msg_len as usize - already).min(self.chunk_size);
        if b.len() < pos + take {
            return Ok(Step::NeedMore);
        }

        // The whole chunk is here: commit.
        let cs = self.streams.entry(csid).or_default();
        if !continues {
            self.buffered -= cs.partial.len();
            cs.partial = Vec::new();
            let field = ext.or(ts_field);
            match fmt {
                0 => {
                    cs.timestamp = field.unwrap_or(0);
                    cs.ts_field = cs.timestamp;
                }
                1 | 2 => {
                    let delta = field.unwrap_or(0);
                    cs.timestamp = cs.timestamp.wrapping_add(delta);
                    cs.ts_field = delta;
                }
                _ => {
                    let delta = ext.unwrap_or(cs.ts_field);
                    cs.timestamp = cs.timestamp.wrapping_add(delta);
                }
            }
            if fmt <= 2 {
                cs.extended = ext.is_some();
            }
            if let Some(l) = length {
                cs.length = l;
            }
            if let Some(t) = type_id {
                cs.type_id = t;
            }
            if let Some(s) = stream_id {
                cs.stream_id = s;
            }
            cs.in_progress = true;
        }
        if take > 0 {
            if self.buffered + take > self.limits.max_buffered_bytes {
                return Err(ChunkError::TooMuchBuffered(self.limits.max_buffered_bytes));
            }
            if cs.partial.is_empty() {
                // Reserve what this message can use, but never more than one chunk ahead
                // of what has actually arrived.
                cs.partial.reserve_exact(take.min(cs.length as usize));
            }
            cs.partial.extend_from_slice(&self.buf[pos..pos + take]);
            self.buffered += take;
        }
        self.buf.advance(pos + take);

        if cs.partial.len() >= cs.length as usize {
            self.buffered -= cs.partial.len();
            cs.in_progress = false;
            let payload = Bytes::from(std::mem::take(&mut cs.partial));
            return Ok(Step::Complete(Message {
                csid,
                timestamp: cs.timestamp,
                type_id: cs.type_id,
                stream_id: cs.stream_id,
                payload,
            }));
        }
        Ok(Step::Partial)
    }
}

/// What parsing one chunk achieved.
enum Step {
    /// The buffer does not hold a whole chunk yet.
    NeedMore,
    /// A chunk was consumed; its message is not complete.
    Partial,
    Complete(Message),
}

/// Outgoing side of the chunk layer: every message is one fmt 0 chunk followed by fmt 3
/// continuations. We send few, small messages, so header compression is not worth state.
#[derive(Debug)]
pub struct ChunkMuxer {
    chunk_size: usize,
}

impl Default for ChunkMuxer {
    fn default() -> Self {
        ChunkMuxer {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkMuxer {
    /// Changes the outgoing chunk size. Call right after writing the Set Chunk Size message
    /// that announces it (that message itself goes out with the old size).
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF);
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Appends `payload` as chunks on `csid` (2..=65599) to `out`.
    pub fn write(
        &self,
        out: &mut BytesMut,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        let extended = timestamp >= 0xFF_FFFF;
        let mut first = true;
        let mut rest = payload;
        loop {
            put_basic_header(out, if first { 0 } else { 3 }, csid);
            if first {
                put_u24(out, if extended { 0xFF_FFFF } else { timestamp });
                put_u24(out, payload.len().min(0xFF_FFFF) as u32);
                out.put_u8(type_id);
                out.put_u32_le(stream_id);
            }
            if extended {
                out.put_u32(timestamp);
            }
            let n = rest.len().min(self.chunk_size);
            out.put_slice(&rest[..n]);
            rest = &rest[n..];
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
}

/// Writes a basic header, choosing the 1-, 2- or 3-byte form from the chunk stream id.
pub fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = (fmt & 3) << 6;
    match csid {
        2..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            // 320..=65599; anything else is a caller bug, encoded modulo the field.
            let v = csid.wrapping_sub(64);
            out.put_u8(fmt | 1);
            out.put_u8(v as u8);
            out.put_u8((v >> 8) as u8);
        }
    }
}

pub(crate) fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_u8((v >> 16) as u8);
    out.put_u8((v >> 8) as u8);
    out.put_u8(v as u8);
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
