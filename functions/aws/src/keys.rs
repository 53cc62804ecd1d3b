//! Every key of the single table, built and read back in one place.
//!
//! This module is the only place in production code where item prefixes (`STREAM#`,
//! `CONN#`, `META`, ...) are written down: every other module asks it for a [`Key`] or a
//! GSI value, and anything reading keys back (the stream-record decoder, listings of one
//! kind of item) goes through [`parse`]. Changing a shape therefore means changing this
//! file and its tests, nothing else.
//!
//! | pk | sk | item |
//! |---|---|---|
//! | `STREAM#{id}` | `META` | the stream, counters, `keyHash`, GSI keys |
//! | `STREAM#{id}` | `CHAT#{ulid}` | chat message |
//! | `STREAM#{id}` | `REACT#{ulid}` | reaction (TTL) |
//! | `STREAM#{id}` | `Q#{ulid}` | question |
//! | `STREAM#{id}` | `QVOTE#{question}#{user}` | one user's vote on a question |
//! | `STREAM#{id}` | `CONN#{connection}` | open socket (fan-out lists these; TTL) |
//! | `STREAM#{id}` | `VIEWER#{connection}` | playback reports (heartbeats; TTL) |
//! | `STREAM#{id}` | `SESSION#{connection}` | one ended view: connected, ended, watch time (TTL) |
//! | `STREAM#{id}` | `BAN#{user}`, `MOD#{user}` | moderation flags |
//! | `STREAM#{id}` | `RATE#{user}` | chat token bucket (TTL) |
//! | `STREAM#{id}` | `METRIC#{RFC 3339 ms}` | quality sample (TTL) |
//! | `STREAM#{id}` | `MIN#{RFC 3339 ms of the minute}` | analytics minute bucket |
//! | `STREAM#{id}` | `LEASE` | which ingest node holds the stream (TTL) |
//! | `STREAM#{id}` | `FEED` | the event feed's head: last sequence number and change position |
//! | `STREAM#{id}` | `EVENT#{seq, 12 digits}` | one event of the ordered feed (TTL) |
//! | `CHANNEL#{id}` | `META` | the channel: name, owner, stream count |
//! | `CHANNEL#{id}` | `MEMBER#{user}` | a granted role (follower ... broadcaster) |
//! | `CHANNEL#{id}` | `WEBHOOK#{webhook}` | a registered webhook: URL, secret, events, state |
//! | `WEBHOOK#{webhook}` | `STREAM#{id}` | what the webhook owes the stream: cursor, lease |
//! | `USER#{id}` | `NOTIF#{notification id}` | one notification in the user's list (TTL) |
//! | `USER#{id}` | `SOCKETS` | the user's open notifications sockets (a string set; TTL) |
//! | `CONN#{connection}` | `USER` | reverse lookup of a notifications socket (TTL) |
//! | `NODE#{id}` | `META` | ingest node registry entry (TTL) |
//!
//! GSIs: `byChannelStatus` (`gsi1pk = CH#{channel}#{status}`) and `byStatus`
//! (`gsi2pk = STATUS#{status}`), both sorted by `{status time}#{id}`; the node registry
//! shares `byStatus` under `gsi2pk = NODES`, sorted by node id.
//!
//! Invariants: ids never contain `#` (streams, messages, questions and reactions are ULIDs;
//! user, channel, connection and node ids are checked or generated upstream), so a prefix
//! plus an id parses back unambiguously; a key this module cannot place parses as
//! [`ItemKey::Unknown`] and readers skip it rather than guess.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use rill_core::stream::StreamStatus;
use rill_core::time::{self, Timestamp};

const META: &str = "META";
const LEASE: &str = "LEASE";
const FEED: &str = "FEED";
const EVENT: &str = "EVENT#";
const STREAM: &str = "STREAM#";
const CONN: &str = "CONN#";
const CHANNEL: &str = "CHANNEL#";
const NODE: &str = "NODE#";
const CHAT: &str = "CHAT#";
const REACT: &str = "REACT#";
const QUESTION: &str = "Q#";
const VOTE: &str = "QVOTE#";
const VIEWER: &str = "VIEWER#";
const SESSION: &str = "SESSION#";
const BAN: &str = "BAN#";
const MODERATOR: &str = "MOD#";
const RATE: &str = "RATE#";
const METRIC: &str = "METRIC#";
const MINUTE: &str = "MIN#";
const MEMBER: &str = "MEMBER#";
const WEBHOOK: &str = "WEBHOOK#";
const USER: &str = "USER#";
const NOTIF: &str = "NOTIF#";
const SOCKETS: &str = "SOCKETS";
const USER_SOCKET: &str = "USER";
/// The registry's partition on the `byStatus` index.
const NODES: &str = "NODES";

/// A primary key (`pk`, `sk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: impl Into<String>, sk: impl Into<String>) -> Key {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The key as the SDK takes it (`GetItem`, `UpdateItem`, `Delete`, ...).
    pub fn item(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }
}

/// The partition of everything that belongs to one stream.
pub fn stream_pk(stream_id: &str) -> String {
    format!("{STREAM}{stream_id}")
}

/// `STREAM#{id}` / `META`.
pub fn stream(stream_id: &str) -> Key {
    Key::new(stream_pk(stream_id), META)
}

pub fn chat(stream_id: &str, message_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{CHAT}{message_id}"))
}

pub fn reaction(stream_id: &str, reaction_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{REACT}{reaction_id}"))
}

pub fn question(stream_id: &str, question_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{QUESTION}{question_id}"))
}

pub fn vote(stream_id: &str, question_id: &str, user_id: &str) -> Key {
    Key::new(
        stream_pk(stream_id),
        format!("{VOTE}{question_id}#{user_id}"),
    )
}

/// `STREAM#{id}` / `CONN#{connection}`: the socket as the stream's fan-out lists it.
pub fn connection(stream_id: &str, connection_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{CONN}{connection_id}"))
}

pub fn viewer(stream_id: &str, connection_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{VIEWER}{connection_id}"))
}

/// `STREAM#{id}` / `SESSION#{connection}`: a view that ended, written by `events-presence`
/// from its listing's removal.
pub fn session(stream_id: &str, connection_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{SESSION}{connection_id}"))
}

pub fn ban(stream_id: &str, user_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{BAN}{user_id}"))
}

pub fn moderator(stream_id: &str, user_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{MODERATOR}{user_id}"))
}

pub fn rate(stream_id: &str, user_id: &str) -> Key {
    Key::new(stream_pk(stream_id), format!("{RATE}{user_id}"))
}

/// Samples sort by time within the stream, so a time range is a `BETWEEN` on this key.
pub fn metric(stream_id: &str, at: &Timestamp) -> Key {
    Key::new(
        stream_pk(stream_id),
        format!("{METRIC}{}", time::format(at)),
    )
}

/// A stream's analytics bucket of the minute starting at `start`; buckets sort by time, so
/// a range is a `BETWEEN` on this key.
pub fn minute(stream_id: &str, start: &Timestamp) -> Key {
    Key::new(
        stream_pk(stream_id),
        format!("{MINUTE}{}", time::format(start)),
    )
}

/// The minute a bucket's sort key (as [`minute`] builds it) starts at.
pub fn minute_start(sk: &str) -> Option<Timestamp> {
    time::parse(sk.strip_prefix(MINUTE)?).ok()
}

/// The head of a stream's event feed.
pub fn feed_head(stream_id: &str) -> Key {
    Key::new(stream_pk(stream_id), FEED)
}

/// The largest feed sequence number a key holds (12 digits).
pub const FEED_SEQ_MAX: u64 = rill_core::feed::SEQ_MAX;

/// One feed event; zero-padded so that events sort by number within the stream (up to
/// [`FEED_SEQ_MAX`]).
pub fn feed_event(stream_id: &str, seq: u64) -> Key {
    Key::new(stream_pk(stream_id), format!("{EVENT}{seq:012}"))
}

pub fn lease(stream_id: &str) -> Key {
    Key::new(stream_pk(stream_id), LEASE)
}

pub fn channel_pk(channel_id: &str) -> String {
    format!("{CHANNEL}{channel_id}")
}

pub fn channel(channel_id: &str) -> Key {
    Key::new(channel_pk(channel_id), META)
}

pub fn member(channel_id: &str, user_id: &str) -> Key {
    Key::new(channel_pk(channel_id), format!("{MEMBER}{user_id}"))
}

/// The `begins_with` operand listing a channel's members.
pub fn members_prefix() -> &'static str {
    MEMBER
}

/// A webhook of a channel (listed with `begins_with(sk, webhooks_prefix())`).
pub fn webhook(channel_id: &str, webhook_id: &str) -> Key {
    Key::new(channel_pk(channel_id), format!("{WEBHOOK}{webhook_id}"))
}

pub fn webhooks_prefix() -> &'static str {
    WEBHOOK
}

pub fn webhook_cursor_pk(webhook_id: &str) -> String {
    format!("{WEBHOOK}{webhook_id}")
}

/// What a webhook owes one stream (one partition per webhook: its cursors).
pub fn webhook_cursor(webhook_id: &str, stream_id: &str) -> Key {
    Key::new(
        webhook_cursor_pk(webhook_id),
        format!("{STREAM}{stream_id}"),
    )
}

/// The stream a cursor's sort key names.
pub fn cursor_stream(sk: &str) -> Option<&str> {
    sk.strip_prefix(STREAM)
}

pub fn user_pk(user_id: &str) -> String {
    format!("{USER}{user_id}")
}

/// One notification of a user (listed with `begins_with(sk, notifications_prefix())`).
pub fn notification(user_id: &str, notification_id: &str) -> Key {
    Key::new(user_pk(user_id), format!("{NOTIF}{notification_id}"))
}

/// The set of a user's open notifications sockets (one item, so a page of recipients is
/// one `BatchGetItem`).
pub fn user_sockets(user_id: &str) -> Key {
    Key::new(user_pk(user_id), SOCKETS)
}

/// A notifications socket found by its id alone (`$disconnect` carries nothing else).
pub fn socket_lookup(connection_id: &str) -> Key {
    Key::new(format!("{CONN}{connection_id}"), USER_SOCKET)
}

pub fn notifications_prefix() -> &'static str {
    NOTIF
}

pub fn node(node_id: &str) -> Key {
    Key::new(format!("{NODE}{node_id}"), META)
}

/// The kinds of item listed with `begins_with(sk, prefix)` within a stream's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Chat,
    Connections,
    Questions,
    Moderators,
    /// Playback reports (`VIEWER#`), one per view.
    Viewers,
    /// Ended views (`SESSION#`).
    Sessions,
}

impl Listed {
    /// The `begins_with` operand.
    pub fn prefix(self) -> &'static str {
        match self {
            Listed::Chat => CHAT,
            Listed::Connections => CONN,
            Listed::Questions => QUESTION,
            Listed::Moderators => MODERATOR,
            Listed::Viewers => VIEWER,
            Listed::Sessions => SESSION,
        }
    }
}

/// `gsi1pk`: one channel's streams in one status.
pub fn by_channel_status(channel_id: &str, status: StreamStatus) -> String {
    format!("CH#{channel_id}#{status}")
}

/// `gsi2pk`: every stream in one status.
pub fn by_status(status: StreamStatus) -> String {
    format!("STATUS#{status}")
}

/// `gsi1sk` / `gsi2sk` of a stream: its status time, then its id (unique, so two streams
/// starting in the same millisecond still both list).
pub fn status_sort(at: &Timestamp, stream_id: &str) -> String {
    format!("{}#{stream_id}", time::format(at))
}

/// `gsi2pk` of every node registry entry (`gsi2sk` is the node id).
pub fn nodes_partition() -> &'static str {
    NODES
}

/// What a key names, read back from `pk` and `sk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKey<'a> {
    Stream {
        stream_id: &'a str,
    },
    Chat {
        stream_id: &'a str,
        message_id: &'a str,
    },
    Reaction {
        stream_id: &'a str,
        reaction_id: &'a str,
    },
    Question {
        stream_id: &'a str,
        question_id: &'a str,
    },
    Vote {
        stream_id: &'a str,
    },
    Connection {
        stream_id: &'a str,
        connection_id: &'a str,
    },
    UserSockets {
        user_id: &'a str,
    },
    SocketLookup {
        connection_id: &'a str,
    },
    Viewer {
        stream_id: &'a str,
        connection_id: &'a str,
    },
    Session {
        stream_id: &'a str,
        connection_id: &'a str,
    },
    Ban {
        stream_id: &'a str,
        user_id: &'a str,
    },
    Moderator {
        stream_id: &'a str,
        user_id: &'a str,
    },
    Rate {
        stream_id: &'a str,
    },
    Metric {
        stream_id: &'a str,
    },
    Minute {
        stream_id: &'a str,
    },
    Lease {
        stream_id: &'a str,
    },
    FeedHead {
        stream_id: &'a str,
    },
    FeedEvent {
        stream_id: &'a str,
    },
    Channel {
        channel_id: &'a str,
    },
    Member {
        channel_id: &'a str,
        user_id: &'a str,
    },
    Node {
        node_id: &'a str,
    },
    Webhook {
        channel_id: &'a str,
        webhook_id: &'a str,
    },
    WebhookCursor {
        webhook_id: &'a str,
        stream_id: &'a str,
    },
    Notification {
        user_id: &'a str,
    },
    Unknown,
}

/// Reads a key back. No sort-key prefix starts another (`QVOTE#` is not `Q#` + something),
/// so the order of the checks does not matter.
pub fn parse<'a>(pk: &'a str, sk: &'a str) -> ItemKey<'a> {
    if let Some(stream_id) = pk.strip_prefix(STREAM) {
        if sk == META {
            return ItemKey::Stream { stream_id };
        }
        if sk == LEASE {
            return ItemKey::Lease { stream_id };
        }
        if sk == FEED {
            return ItemKey::FeedHead { stream_id };
        }
        if sk.starts_with(EVENT) {
            return ItemKey::FeedEvent { stream_id };
        }
        if let Some(message_id) = sk.strip_prefix(CHAT) {
            return ItemKey::Chat {
                stream_id,
                message_id,
            };
        }
        if let Some(reaction_id) = sk.strip_prefix(REACT) {
            return ItemKey::Reaction {
                stream_id,
                reaction_id,
            };
        }
        if sk.starts_with(VOTE) {
            return ItemKey::Vote { stream_id };
        }
        if let Some(question_id) = sk.strip_prefix(QUESTION) {
            return ItemKey::Question {
                stream_id,
                question_id,
            };
        }
        if let Some(connection_id) = sk.strip_prefix(CONN) {
            return ItemKey::Connection {
                stream_id,
                connection_id,
            };
        }
        if let Some(connection_id) = sk.strip_prefix(VIEWER) {
            return ItemKey::Viewer {
                stream_id,
                connection_id,
            };
        }
        if let Some(connection_id) = sk.strip_prefix(SESSION) {
            return ItemKey::Session {
                stream_id,
                connection_id,
            };
        }
        if let Some(user_id) = sk.strip_prefix(BAN) {
            return ItemKey::Ban { stream_id, user_id };
        }
        if let Some(user_id) = sk.strip_prefix(MODERATOR) {
            return ItemKey::Moderator { stream_id, user_id };
        }
        if sk.starts_with(RATE) {
            return ItemKey::Rate { stream_id };
        }
        if sk.starts_with(METRIC) {
            return ItemKey::Metric { stream_id };
        }
        if sk.starts_with(MINUTE) {
            return ItemKey::Minute { stream_id };
        }
        return ItemKey::Unknown;
    }
    if let Some(connection_id) = pk.strip_prefix(CONN) {
        return match sk {
            USER_SOCKET => ItemKey::SocketLookup { connection_id },
            _ => ItemKey::Unknown,
        };
    }
    if let Some(channel_id) = pk.strip_prefix(CHANNEL) {
        if sk == META {
            return ItemKey::Channel { channel_id };
        }
        if let Some(user_id) = sk.strip_prefix(MEMBER) {
            return ItemKey::Member {
                channel_id,
                user_id,
            };
        }
        if let Some(webhook_id) = sk.strip_prefix(WEBHOOK) {
            return ItemKey::Webhook {
                channel_id,
                webhook_id,
            };
        }
        return ItemKey::Unknown;
    }
    if let Some(user_id) = pk.strip_prefix(USER) {
        return match sk {
            _ if sk.starts_with(NOTIF) => ItemKey::Notification { user_id },
            SOCKETS => ItemKey::UserSockets { user_id },
            _ => ItemKey::Unknown,
        };
    }
    if let Some(webhook_id) = pk.strip_prefix(WEBHOOK) {
        return match sk.strip_prefix(STREAM) {
            Some(stream_id) => ItemKey::WebhookCursor {
                webhook_id,
                stream_id,
            },
            None => ItemKey::Unknown,
        };
    }
    if let Some(node_id) = pk.strip_prefix(NODE)
        && sk == META
    {
        return ItemKey::Node { node_id };
    }
    ItemKey::Unknown
}

/// [`parse`] on a key or item as the SDK returns it; `Unknown` without string keys.
pub fn parse_item(item: &HashMap<String, AttributeValue>) -> ItemKey<'_> {
    let attr = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    match (attr("pk"), attr("sk")) {
        (Some(pk), Some(sk)) => parse(pk, sk),
        _ => ItemKey::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_key_parses_back_to_what_it_names() {
        let at = time::now();
        let cases = [
            (stream("s"), ItemKey::Stream { stream_id: "s" }),
            (feed_head("s"), ItemKey::FeedHead { stream_id: "s" }),
            (feed_event("s", 7), ItemKey::FeedEvent { stream_id: "s" }),
            (
                chat("s", "m"),
                ItemKey::Chat {
                    stream_id: "s",
                    message_id: "m",
                },
            ),
            (
                reaction("s", "r"),
                ItemKey::Reaction {
                    stream_id: "s",
                    reaction_id: "r",
                },
            ),
            (
                question("s", "q"),
                ItemKey::Question {
                    stream_id: "s",
                    question_id: "q",
                },
            ),
            (vote("s", "q", "u"), ItemKey::Vote { stream_id: "s" }),
            (
                connection("s", "c"),
                ItemKey::Connection {
                    stream_id: "s",
                    connection_id: "c",
                },
            ),
            (
                viewer("s", "c"),
                ItemKey::Viewer {
                    stream_id: "s",
                    connection_id: "c",
                },
            ),
            (
                session("s", "c"),
                ItemKey::Session {
                    stream_id: "s",
                    connection_id: "c",
                },
            ),
            (
                ban("s", "u"),
                ItemKey::Ban {
                    stream_id: "s",
                    user_id: "u",
                },
            ),
            (
                moderator("s", "u"),
                ItemKey::Moderator {
                    stream_id: "s",
                    user_id: "u",
                },
            ),
            (rate("s", "u"), ItemKey::Rate { stream_id: "s" }),
            (metric("s", &at), ItemKey::Metric { stream_id: "s" }),
            (minute("s", &at), ItemKey::Minute { stream_id: "s" }),
            (lease("s"), ItemKey::Lease { stream_id: "s" }),
            (channel("ch"), ItemKey::Channel { channel_id: "ch" }),
            (
                member("ch", "u"),
                ItemKey::Member {
                    channel_id: "ch",
                    user_id: "u",
                },
            ),
            (node("n"), ItemKey::Node { node_id: "n" }),
            (
                webhook("c", "w"),
                ItemKey::Webhook {
                    channel_id: "c",
                    webhook_id: "w",
                },
            ),
            (
                notification("u", "n"),
                ItemKey::Notification { user_id: "u" },
            ),
            (user_sockets("u"), ItemKey::UserSockets { user_id: "u" }),
            (
                socket_lookup("c"),
                ItemKey::SocketLookup { connection_id: "c" },
            ),
            (
                webhook_cursor("w", "s"),
                ItemKey::WebhookCursor {
                    webhook_id: "w",
                    stream_id: "s",
                },
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(parse(&key.pk, &key.sk), expected, "{key:?}");
            assert_eq!(parse_item(&key.item()), expected, "{key:?}");
        }
    }

    #[test]
    fn a_vote_is_neither_listed_nor_parsed_as_a_question() {
        let k = vote("s", "q", "u");
        assert!(!k.sk.starts_with(Listed::Questions.prefix()));
        assert_eq!(parse(&k.pk, &k.sk), ItemKey::Vote { stream_id: "s" });
    }

    #[test]
    fn keys_of_other_shapes_are_unknown() {
        for (pk, sk) in [
            ("STREAM#s", "KEY#abc"),
            ("CONN#c", "CONN#c"),
            ("CHANNEL#ch", "BAN#u"),
            ("NODE#n", "LEASE"),
            ("other", "META"),
        ] {
            assert_eq!(parse(pk, sk), ItemKey::Unknown, "{pk} / {sk}");
        }
        assert_eq!(parse_item(&HashMap::new()), ItemKey::Unknown);
    }

    #[test]
    fn metric_keys_sort_by_time() {
        let early = chrono::DateTime::from_timestamp_millis(1_800_000_000_000).expect("time");
        let late = chrono::DateTime::from_timestamp_millis(1_800_000_005_000).expect("time");
        assert!(metric("s", &early).sk < metric("s", &late).sk);
    }

    #[test]
    fn index_keys_name_the_channel_and_the_status() {
        assert_eq!(by_channel_status("ch", StreamStatus::Live), "CH#ch#live");
        assert_eq!(by_status(StreamStatus::Scheduled), "STATUS#scheduled");
        assert_eq!(nodes_partition(), "NODES");
    }

    #[test]
    fn a_minute_key_reads_back_its_start() {
        let start = time::parse("2026-12-07T21:14:00.000Z").expect("time");
        assert_eq!(minute_start(&minute("s", &start).sk), Some(start));
        assert_eq!(minute_start("METRIC#2026-12-07T21:14:00.000Z"), None);
    }
}
