//! Test support: a scripted RTMP publisher that produces client bytes and decodes what the
//! server sends back. Used by the session, fuzz and server tests; built only for tests.

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Value};
use super::chunk::{ChunkDemuxer, ChunkMuxer, Limits, msg_type};
use super::handshake::HANDSHAKE_SIZE;

/// A message the server sent, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServerMsg {
    /// A protocol control message with its 32-bit value.
    Control(u8, u32),
    /// User control event type and its 32-bit value.
    UserControl(u16, u32),
    Command(Vec<Amf0Value>),
    Other(u8),
}

#[derive(Debug)]
pub(crate) struct Client {
    mux: ChunkMuxer,
    demux: ChunkDemuxer,
    handshake_left: usize,
    pub received: Vec<ServerMsg>,
}

impl Client {
    pub fn new() -> Self {
        Client {
            mux: ChunkMuxer::default(),
            demux: ChunkDemuxer::new(Limits::default(), u32::MAX).with_control_messages(),
            handshake_left: 1 + 2 * HANDSHAKE_SIZE,
            received: Vec::new(),
        }
    }

    /// C0 + C1 + C2 in one go (our server does not need to be waited for).
    pub fn handshake(&self) -> Vec<u8> {
        let mut v = vec![3u8];
        v.extend((0..2 * HANDSHAKE_SIZE).map(|i| (i % 253) as u8));
        v
    }

    /// Decodes server bytes (the handshake reply is skipped).
    pub fn read(&mut self, mut bytes: &[u8]) {
        let skip = self.handshake_left.min(bytes.len());
        self.handshake_left -= skip;
        bytes = &bytes[skip..];
        self.demux.push(bytes);
        while let Some(m) = self.demux.next_message().expect("server sent valid chunks") {
            let be32 = |p: &[u8]| u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            self.received.push(match m.type_id {
                1..=3 | 5 | 6 => ServerMsg::Control(m.type_id, be32(&m.payload)),
                msg_type::USER_CONTROL => ServerMsg::UserControl(
                    u16::from_be_bytes([m.payload[0], m.payload[1]]),
                    be32(&m.payload[2..]),
                ),
                msg_type::COMMAND_AMF0 => ServerMsg::Command(amf0::decode_all(&m.payload).unwrap()),
                other => ServerMsg::Other(other),
            });
        }
    }

    pub fn commands(&self) -> Vec<Vec<Amf0Value>> {
        self.received
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Command(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    /// `code`s of every onStatus received.
    pub fn statuses(&self) -> Vec<String> {
        self.commands()
            .iter()
            .filter(|v| v.first().and_then(Amf0Value::as_str) == Some("onStatus"))
            .filter_map(|v| v.get(3)?.get("code")?.as_str().map(str::to_owned))
            .collect()
    }

    fn message(&self, csid: u32, ts: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.mux
            .write(&mut out, csid, ts, type_id, stream_id, payload);
        out.to_vec()
    }

    /// `[name, txn, null, args...]` as an AMF0 command.
    pub fn command(&self, name: &str, txn: f64, stream_id: u32, args: Vec<Amf0Value>) -> Vec<u8> {
        let mut values = vec![
            Amf0Value::string(name),
            Amf0Value::Number(txn),
            Amf0Value::Null,
        ];
        values.extend(args);
        self.message(
            3,
            0,
            msg_type::COMMAND_AMF0,
            stream_id,
            &amf0::encode_all(&values),
        )
    }

    pub fn set_chunk_size(&mut self, size: u32) -> Vec<u8> {
        let m = self.message(2, 0, msg_type::SET_CHUNK_SIZE, 0, &size.to_be_bytes());
        self.mux.set_chunk_size(size as usize);
        m
    }

    /// Everything OBS sends from `connect` to `publish`, as OBS orders it.
    pub fn connect_and_publish(&mut self, app: &str, key: &str) -> Vec<u8> {
        let mut v = self.set_chunk_size(4096);
        let connect = amf0::encode_all(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string(app)),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; FMSc/1.0)"),
                ),
                (
                    "swfUrl",
                    Amf0Value::string(format!("rtmp://127.0.0.1/{app}")),
                ),
                (
                    "tcUrl",
                    Amf0Value::string(format!("rtmp://127.0.0.1/{app}")),
                ),
            ]),
        ]);
        v.extend(self.message(3, 0, msg_type::COMMAND_AMF0, 0, &connect));
        v.extend(self.command("releaseStream", 2.0, 0, vec![Amf0Value::string(key)]));
        v.extend(self.command("FCPublish", 3.0, 0, vec![Amf0Value::string(key)]));
        v.extend(self.command("createStream", 4.0, 0, vec![]));
        v.extend(self.command(
            "publish",
            5.0,
            1,
            vec![Amf0Value::string(key), Amf0Value::string("live")],
        ));
        v
    }

    pub fn metadata(&self, width: u32, height: u32, fps: f64, kbps: f64) -> Vec<u8> {
        let body = amf0::encode_all(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(f64::from(width))),
                ("height".into(), Amf0Value::Number(f64::from(height))),
                ("framerate".into(), Amf0Value::Number(fps)),
                ("videodatarate".into(), Amf0Value::Number(kbps)),
                (
                    "encoder".into(),
                    Amf0Value::string("obs-output module (libobs version 30.2.3)"),
                ),
            ]),
        ]);
        self.message(4, 0, msg_type::DATA_AMF0, 1, &body)
    }

    pub fn video(&self, ts: u32, tag: &Bytes) -> Vec<u8> {
        self.message(6, ts, msg_type::VIDEO, 1, tag)
    }

    pub fn audio(&self, ts: u32, tag: &Bytes) -> Vec<u8> {
        self.message(4, ts, msg_type::AUDIO, 1, tag)
    }

    pub fn user_control(&self, event: u16, value: u32) -> Vec<u8> {
        let mut p = BytesMut::new();
        p.put_u16(event);
        p.put_u32(value);
        self.message(2, 0, msg_type::USER_CONTROL, 0, &p)
    }
}
