//! Tests of [`super`]'s session state machine, named after behaviours.

use super::super::testing::{Client, ServerMsg};
use super::*;
use crate::rtmp::flv::tests as flv_t;

fn connected() -> (Session, Client) {
    let mut s = Session::new(SessionConfig::default());
    let mut c = Client::new();
    s.handle_input(&c.handshake()).unwrap();
    c.read(&s.poll_output().unwrap());
    s.handle_input(&c.connect_and_publish("live", "secret-key"))
        .unwrap();
    c.read(&s.poll_output().unwrap());
    (s, c)
}

fn media(s: &mut Session) -> Vec<MediaEvent> {
    std::iter::from_fn(|| s.poll_event())
        .map(|e| match e {
            SessionEvent::Media(m) => m,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn connect_is_answered_with_window_bandwidth_chunk_size_and_success() {
    let (_, c) = connected();
    let msgs = &c.received;
    assert!(matches!(
        msgs[0],
        ServerMsg::Control(msg_type::WINDOW_ACK_SIZE, 5_000_000)
    ));
    assert!(matches!(
        msgs[1],
        ServerMsg::Control(msg_type::SET_PEER_BANDWIDTH, 5_000_000)
    ));
    assert!(matches!(
        msgs[2],
        ServerMsg::Control(msg_type::SET_CHUNK_SIZE, 4096)
    ));
    let ServerMsg::Command(result) = &msgs[3] else {
        panic!("{:?}", msgs[3])
    };
    assert_eq!(result[0].as_str(), Some("_result"));
    assert_eq!(result[1].as_f64(), Some(1.0));
    assert_eq!(
        result[3].get("code").and_then(Amf0Value::as_str),
        Some("NetConnection.Connect.Success")
    );
}

#[test]
fn create_stream_result_carries_the_stream_id_as_fourth_value() {
    let (_, c) = connected();
    let create = c
        .commands()
        .into_iter()
        .find(|v| v[1].as_f64() == Some(4.0))
        .unwrap();
    assert_eq!(create[0].as_str(), Some("_result"));
    assert_eq!(create[2], Amf0Value::Null);
    assert_eq!(create[3], Amf0Value::Number(1.0));
}

#[test]
fn publish_waits_for_authorisation_and_holds_media_until_accepted() {
    let (mut s, mut c) = connected();
    let Some(SessionEvent::PublishRequested { app, stream_key }) = s.poll_event() else {
        panic!("no publish request");
    };
    assert_eq!((app.as_str(), stream_key.expose()), ("live", "secret-key"));
    assert!(
        !format!("{stream_key:?}").contains("secret"),
        "Debug leaks the key"
    );
    assert!(s.is_awaiting_authorisation());
    // The client sends media anyway: nothing comes out before accept.
    s.handle_input(&c.video(0, &flv_t::video_seq_header()))
        .unwrap();
    s.handle_input(&c.video(0, &flv_t::video_frame(true, 0, &[0x65, 1])))
        .unwrap();
    assert_eq!(s.poll_event(), None);
    assert!(!c.statuses().contains(&"NetStream.Publish.Start".to_owned()));

    s.accept_publish().unwrap();
    c.read(&s.poll_output().unwrap());
    assert!(c.statuses().contains(&"NetStream.Publish.Start".to_owned()));
    assert!(
        c.received
            .iter()
            .any(|m| matches!(m, ServerMsg::UserControl(0, 1)))
    );
    let got = media(&mut s);
    assert!(matches!(got[0], MediaEvent::VideoConfig { .. }));
    assert!(matches!(got[1], MediaEvent::Video { keyframe: true, .. }));
}

#[test]
fn refused_publish_sends_an_error_status_and_closes_without_media() {
    let (mut s, mut c) = connected();
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::PublishRequested { .. })
    ));
    s.handle_input(&c.video(0, &flv_t::video_seq_header()))
        .unwrap();
    s.reject_publish(&Refusal::BadKey);
    c.read(&s.poll_output().unwrap());
    let status = c
        .commands()
        .into_iter()
        .find(|v| v[0].as_str() == Some("onStatus"))
        .unwrap();
    assert_eq!(
        status[3].get("level").and_then(Amf0Value::as_str),
        Some("error")
    );
    assert_eq!(
        status[3].get("code").and_then(Amf0Value::as_str),
        Some("NetStream.Publish.BadName")
    );
    assert!(s.is_closed());
    s.handle_input(&c.video(0, &flv_t::video_seq_header()))
        .unwrap();
    s.finish();
    assert_eq!(s.poll_event(), None, "refused session produced events");
}

#[test]
fn empty_stream_key_is_refused_without_asking_the_owner() {
    let mut s = Session::new(SessionConfig::default());
    let mut c = Client::new();
    s.handle_input(&c.handshake()).unwrap();
    s.handle_input(&c.connect_and_publish("live", "")).unwrap();
    assert_eq!(s.poll_event(), None);
    assert!(s.is_closed());
    c.read(&s.poll_output().unwrap());
    assert!(
        c.statuses()
            .contains(&"NetStream.Publish.BadName".to_owned())
    );
}

#[test]
fn full_publish_yields_configs_frames_metadata_then_a_single_end() {
    let (mut s, c) = connected();
    s.poll_event();
    s.accept_publish().unwrap();
    let mut wire = c.metadata(1280, 720, 30.0, 2500.0);
    wire.extend(c.video(0, &flv_t::video_seq_header()));
    wire.extend(c.audio(0, &flv_t::audio_seq_header()));
    wire.extend(c.video(0, &flv_t::video_frame(true, 66, &[0x65; 300])));
    wire.extend(c.audio(21, &flv_t::audio_frame(&[1; 200])));
    wire.extend(c.video(33, &flv_t::video_frame(false, 33, &[0x41; 5000])));
    wire.extend(c.command("FCUnpublish", 5.0, 0, vec![Amf0Value::string("k")]));
    wire.extend(c.command("deleteStream", 6.0, 0, vec![Amf0Value::Number(1.0)]));
    s.handle_input(&wire).unwrap();
    assert!(
        s.is_closed(),
        "deleteStream after FCUnpublish closes the session"
    );
    s.finish();
    let got = media(&mut s);
    assert_eq!(
        got[0],
        MediaEvent::Metadata {
            width: Some(1280),
            height: Some(720),
            fps: Some(30.0),
            video_kbps: Some(2500.0)
        }
    );
    assert!(matches!(got[1], MediaEvent::VideoConfig { .. }));
    assert!(matches!(
        got[2],
        MediaEvent::AudioConfig {
            sample_rate: 48000,
            channels: 2,
            ..
        }
    ));
    assert!(matches!(
        got[3],
        MediaEvent::Video {
            dts_ms: 0,
            pts_ms: 66,
            keyframe: true,
            ..
        }
    ));
    assert!(matches!(got[4], MediaEvent::Audio { pts_ms: 21, .. }));
    assert!(matches!(
        got[5],
        MediaEvent::Video {
            dts_ms: 33,
            pts_ms: 66,
            keyframe: false,
            ..
        }
    ));
    assert_eq!(got[6], MediaEvent::End);
    assert_eq!(got.len(), 7);
}

#[test]
fn unsupported_codec_ends_the_session_with_end_after_prior_media() {
    let (mut s, c) = connected();
    s.poll_event();
    s.accept_publish().unwrap();
    s.handle_input(&c.video(0, &flv_t::video_seq_header()))
        .unwrap();
    let err = s
        .handle_input(&c.audio(0, &Bytes::from_static(&[0x2F, 0xFF, 0xFB])))
        .unwrap_err();
    assert!(err.to_string().contains("MP3"), "{err}");
    assert!(s.is_closed());
    s.finish();
    let got = media(&mut s);
    assert!(matches!(
        got[..],
        [MediaEvent::VideoConfig { .. }, MediaEvent::End]
    ));
}

#[test]
fn commands_out_of_order_are_errors() {
    let mut s = Session::new(SessionConfig::default());
    let c = Client::new();
    s.handle_input(&c.handshake()).unwrap();
    let err = s
        .handle_input(&c.command("createStream", 2.0, 0, vec![]))
        .unwrap_err();
    assert!(matches!(
        err,
        SessionError::Protocol("command before connect")
    ));

    let (mut s, c) = connected();
    s.poll_event();
    s.accept_publish().unwrap();
    let again = c.command("publish", 7.0, 1, vec![Amf0Value::string("x")]);
    assert!(matches!(
        s.handle_input(&again),
        Err(SessionError::Protocol("publish sent twice"))
    ));
}

#[test]
fn ping_request_gets_a_ping_response_with_the_same_time() {
    let (mut s, mut c) = connected();
    s.poll_event();
    s.accept_publish().unwrap();
    c.read(&s.poll_output().unwrap());
    s.handle_input(&c.user_control(6, 0xDEAD_BEEF)).unwrap();
    c.read(&s.poll_output().unwrap());
    assert!(matches!(
        c.received.last(),
        Some(ServerMsg::UserControl(7, 0xDEAD_BEEF))
    ));
}

#[test]
fn acknowledgement_is_sent_after_a_window_of_input() {
    let (mut s, mut c) = connected();
    s.poll_event();
    s.accept_publish().unwrap();
    s.handle_input(&c.video(0, &flv_t::video_seq_header()))
        .unwrap();
    c.read(&s.poll_output().unwrap());
    let frame = flv_t::video_frame(false, 0, &vec![0x41; 1_000_000]);
    for i in 0..6 {
        s.handle_input(&c.video(i * 33, &frame)).unwrap();
    }
    c.read(&s.poll_output().unwrap());
    assert!(
        c.received.iter().any(
            |m| matches!(m, ServerMsg::Control(msg_type::ACKNOWLEDGEMENT, n) if *n > 5_000_000)
        )
    );
}

#[test]
fn timestamps_keep_increasing_across_the_32_bit_wrap() {
    let mut t = Timeline::default();
    assert_eq!(t.extend(u32::MAX - 10), i64::from(u32::MAX) - 10);
    assert_eq!(t.extend(5), i64::from(u32::MAX) + 6);
    assert_eq!(
        t.extend(3),
        i64::from(u32::MAX) + 4,
        "small step back stays near"
    );
}

#[test]
fn pending_input_during_authorisation_is_bounded() {
    let config = SessionConfig {
        max_pending_bytes: 10_000,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config);
    let mut c = Client::new();
    s.handle_input(&c.handshake()).unwrap();
    s.handle_input(&c.connect_and_publish("live", "k")).unwrap();
    assert!(s.is_awaiting_authorisation());
    let err = s.handle_input(&vec![0u8; 20_000]).unwrap_err();
    assert!(matches!(err, SessionError::PendingOverflow(10_000)));
}

#[test]
fn loggable_app_never_includes_a_pasted_key() {
    assert_eq!(loggable_app("live"), "live");
    assert_eq!(loggable_app("live/sk_123"), "live");
    assert_eq!(loggable_app("live?key=1"), "live");
}
