//! Tests of [`super`]'s chunk stream, named after behaviours.

use super::*;

fn demux_all(d: &mut ChunkDemuxer) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        out.push(m);
    }
    out
}

fn demuxer() -> ChunkDemuxer {
    ChunkDemuxer::new(Limits::default(), 5_000_000)
}

/// A chunk with an explicit header, for the header forms our muxer never writes.
fn chunk(fmt: u8, csid: u32, ts: u32, len: u32, ty: u8, sid: u32, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    put_basic_header(&mut b, fmt, csid);
    let ext = ts >= 0xFF_FFFF;
    if fmt <= 2 {
        put_u24(&mut b, if ext { 0xFF_FFFF } else { ts });
    }
    if fmt <= 1 {
        put_u24(&mut b, len);
        b.put_u8(ty);
    }
    if fmt == 0 {
        b.put_u32_le(sid);
    }
    if ext {
        b.put_u32(ts);
    }
    b.put_slice(body);
    b
}

fn set_chunk_size(size: u32) -> BytesMut {
    chunk(0, 2, 0, 4, msg_type::SET_CHUNK_SIZE, 0, &size.to_be_bytes())
}

#[test]
fn interleaved_chunk_streams_reassemble_independently() {
    // Two 300-byte messages on csid 4 (video) and 6 (audio), chunks alternating.
    let video: Vec<u8> = (0..300).map(|i| i as u8).collect();
    let audio: Vec<u8> = (0..300).map(|i| (i * 7) as u8).collect();
    let mut wire = BytesMut::new();
    wire.extend(chunk(0, 4, 40, 300, msg_type::VIDEO, 1, &video[..128]));
    wire.extend(chunk(0, 6, 23, 300, msg_type::AUDIO, 1, &audio[..128]));
    wire.extend(chunk(3, 4, 0, 0, 0, 0, &video[128..256]));
    wire.extend(chunk(3, 6, 0, 0, 0, 0, &audio[128..256]));
    wire.extend(chunk(3, 6, 0, 0, 0, 0, &audio[256..]));
    wire.extend(chunk(3, 4, 0, 0, 0, 0, &video[256..]));
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].csid, msgs[0].timestamp, msgs[0].type_id),
        (6, 23, msg_type::AUDIO)
    );
    assert_eq!(msgs[0].payload, audio);
    assert_eq!(
        (msgs[1].csid, msgs[1].timestamp, msgs[1].type_id),
        (4, 40, msg_type::VIDEO)
    );
    assert_eq!(msgs[1].payload, video);
    assert_eq!(msgs[1].stream_id, 1);
}

#[test]
fn fmt1_fmt2_fmt3_headers_inherit_fields_and_add_deltas() {
    let mut wire = BytesMut::new();
    wire.extend(chunk(0, 5, 1000, 3, msg_type::AUDIO, 1, b"abc"));
    // fmt 1: new length and type, delta 20.
    wire.extend(chunk(1, 5, 20, 2, msg_type::VIDEO, 0, b"de"));
    // fmt 2: same length/type, delta 33.
    wire.extend(chunk(2, 5, 33, 0, 0, 0, b"fg"));
    // fmt 3 starting a new message: repeats the last delta (33).
    wire.extend(chunk(3, 5, 0, 0, 0, 0, b"hi"));
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    let summary: Vec<_> = msgs
        .iter()
        .map(|m| (m.timestamp, m.type_id, m.stream_id, &m.payload[..]))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1000, msg_type::AUDIO, 1, &b"abc"[..]),
            (1020, msg_type::VIDEO, 1, &b"de"[..]),
            (1053, msg_type::VIDEO, 1, &b"fg"[..]),
            (1086, msg_type::VIDEO, 1, &b"hi"[..]),
        ]
    );
}

#[test]
fn extended_timestamp_on_fmt0_and_on_its_fmt3_continuations() {
    let ts = 0x0123_4567;
    let body: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let mut wire = chunk(0, 4, ts, 200, msg_type::VIDEO, 1, &body[..128]);
    // The continuation repeats the 4-byte extended timestamp after its 1-byte header.
    wire.extend(chunk(3, 4, ts, 0, 0, 0, &body[128..]));
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].timestamp, ts);
    assert_eq!(msgs[0].payload, body);

    // And our muxer writes the same layout.
    let mut out = BytesMut::new();
    ChunkMuxer::default().write(&mut out, 4, ts, msg_type::VIDEO, 1, &body);
    assert_eq!(out, wire);
}

#[test]
fn extended_delta_on_fmt1_is_added() {
    let mut wire = chunk(0, 4, 10, 1, msg_type::VIDEO, 1, b"a");
    wire.extend(chunk(1, 4, 0x0100_0000, 1, msg_type::VIDEO, 0, b"b"));
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    assert_eq!(msgs[1].timestamp, 0x0100_000A);
}

#[test]
fn set_chunk_size_applies_to_the_chunks_that_follow() {
    let body: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    let mut wire = set_chunk_size(4096);
    let mut mux = ChunkMuxer::default();
    mux.set_chunk_size(4096);
    mux.write(&mut wire, 6, 0, msg_type::VIDEO, 1, &body);
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    assert_eq!(d.chunk_size(), 4096);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload, body);
}

#[test]
fn chunk_size_above_64_kib_or_zero_is_rejected() {
    let mut d = demuxer();
    d.push(&set_chunk_size(65_536));
    assert!(d.next_message().unwrap().is_none());
    d.push(&set_chunk_size(65_537));
    assert_eq!(
        d.next_message(),
        Err(ChunkError::BadChunkSize(65_537, 65_536))
    );
    let mut d = demuxer();
    d.push(&set_chunk_size(0x8000_0000));
    assert!(matches!(
        d.next_message(),
        Err(ChunkError::BadChunkSize(0, _))
    ));
    let mut d = demuxer();
    d.push(&chunk(0, 2, 0, 2, msg_type::SET_CHUNK_SIZE, 0, &[0, 1]));
    assert!(matches!(
        d.next_message(),
        Err(ChunkError::ShortControlMessage(1, 2))
    ));
}

#[test]
fn abort_discards_the_partial_message() {
    let mut wire = chunk(0, 4, 0, 200, msg_type::VIDEO, 1, &[1; 128]);
    wire.extend(chunk(0, 2, 0, 4, msg_type::ABORT, 0, &4u32.to_be_bytes()));
    // After the abort, a fresh message on the same chunk stream.
    wire.extend(chunk(0, 4, 5, 3, msg_type::VIDEO, 1, b"new"));
    let mut d = demuxer();
    d.push(&wire);
    let msgs = demux_all(&mut d);
    assert_eq!(msgs.len(), 1);
    assert_eq!(&msgs[0].payload[..], b"new");
    assert_eq!(d.buffered, 0);
}

#[test]
fn oversized_messages_are_rejected_before_buffering() {
    let mut d = demuxer();
    d.push(&chunk(
        0,
        4,
        0,
        8 * 1024 * 1024 + 1,
        msg_type::VIDEO,
        1,
        &[0; 16],
    ));
    assert!(matches!(
        d.next_message(),
        Err(ChunkError::MessageTooLarge(..))
    ));
    // Exactly the limit is fine (only the first chunk's bytes are held).
    let mut d = demuxer();
    d.push(&chunk(
        0,
        4,
        0,
        8 * 1024 * 1024,
        msg_type::VIDEO,
        1,
        &[0; 128],
    ));
    assert_eq!(d.next_message(), Ok(None));
    assert_eq!(d.buffered, 128);
}

#[test]
fn too_many_chunk_streams_are_rejected() {
    let mut d = demuxer();
    let mut wire = BytesMut::new();
    for csid in 3..(3 + 64) {
        wire.extend(chunk(0, csid, 0, 1, msg_type::AUDIO, 1, b"x"));
    }
    d.push(&wire);
    assert_eq!(demux_all(&mut d).len(), 64);
    d.push(&chunk(0, 200, 0, 1, msg_type::AUDIO, 1, b"x"));
    assert_eq!(d.next_message(), Err(ChunkError::TooManyChunkStreams(64)));
}

#[test]
fn fmt2_or_fmt3_on_an_unknown_chunk_stream_is_rejected() {
    for fmt in [2, 3] {
        let mut d = demuxer();
        d.push(&chunk(fmt, 9, 0, 0, 0, 0, b""));
        assert_eq!(
            d.next_message(),
            Err(ChunkError::NoPreviousHeader { fmt, csid: 9 })
        );
    }
    // fmt 1 on a fresh stream is tolerated (stream id 0).
    let mut d = demuxer();
    d.push(&chunk(1, 9, 7, 1, msg_type::AUDIO, 0, b"z"));
    let m = d.next_message().unwrap().unwrap();
    assert_eq!((m.timestamp, m.stream_id), (7, 0));
}

#[test]
fn muxer_output_round_trips_for_every_basic_header_form() {
    let mut mux = ChunkMuxer::default();
    for (csid, len, ts) in [
        (2, 0, 0),
        (3, 1, 5),
        (63, 128, 9),
        (64, 129, 0xFF_FFFE),
        (319, 1000, 0xFF_FFFF),
        (320, 300, u32::MAX),
        (65_599, 4097, 77),
    ] {
        for chunk_size in [128, 4096] {
            mux.set_chunk_size(chunk_size);
            let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut wire = set_chunk_size(chunk_size as u32);
            mux.write(&mut wire, csid, ts, msg_type::COMMAND_AMF0, 1, &payload);
            let mut d = demuxer();
            d.push(&wire);
            let msgs = demux_all(&mut d);
            assert_eq!(msgs.len(), 1, "csid {csid} len {len}");
            assert_eq!(
                (msgs[0].csid, msgs[0].timestamp, msgs[0].stream_id),
                (csid, ts, 1),
                "csid {csid} len {len}"
            );
            assert_eq!(msgs[0].payload, payload);
        }
    }
}

#[test]
fn byte_by_byte_feeding_yields_the_same_messages() {
    let mut wire = set_chunk_size(300);
    let mut mux = ChunkMuxer::default();
    mux.set_chunk_size(300);
    for i in 0..10u32 {
        mux.write(
            &mut wire,
            4 + i % 3,
            i * 40,
            msg_type::VIDEO,
            1,
            &vec![i as u8; 700],
        );
    }
    let mut whole = demuxer();
    whole.push(&wire);
    let expected = demux_all(&mut whole);
    assert_eq!(expected.len(), 10);
    let mut d = demuxer();
    let mut got = Vec::new();
    for byte in wire.iter() {
        d.push(&[*byte]);
        got.extend(demux_all(&mut d));
    }
    assert_eq!(got, expected);
}

#[test]
fn acknowledgement_is_due_after_each_window() {
    let mut d = ChunkDemuxer::new(Limits::default(), 1000);
    d.push(&[0; 999]);
    assert_eq!(d.take_ack(), None);
    d.push(&[0; 1]);
    assert_eq!(d.take_ack(), Some(1000));
    assert_eq!(d.take_ack(), None);
    // The peer's own window wins once it sends one.
    let mut d = ChunkDemuxer::new(Limits::default(), 1_000_000);
    d.push(&chunk(
        0,
        2,
        0,
        4,
        msg_type::WINDOW_ACK_SIZE,
        0,
        &100u32.to_be_bytes(),
    ));
    assert_eq!(d.next_message(), Ok(None));
    d.push(&[0x44; 90]);
    assert_eq!(d.take_ack(), Some(106));
}

#[test]
fn zero_length_messages_are_delivered_empty() {
    let mut d = demuxer();
    d.push(&chunk(0, 3, 1, 0, msg_type::COMMAND_AMF0, 0, b""));
    d.push(&chunk(3, 3, 0, 0, 0, 0, b""));
    let msgs = demux_all(&mut d);
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.payload.is_empty()));
    assert_eq!(msgs[1].timestamp, 2);
}
