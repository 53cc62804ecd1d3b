//! Channels and the roles users hold in them: who may stream in a channel, who moderates
//! its streams, who counts as a follower or subscriber for chat modes, and who may change
//! any of that.
//!
//! Invariants:
//! - a channel has exactly one owner, fixed when the channel is created: explicitly
//!   (`POST /api/channels`) or by the first stream created in a channel id nobody holds.
//!   Ownership is never granted, revoked or overwritten through memberships, so a channel
//!   cannot be taken over;
//! - roles are ranked, each including those below it:
//!   `follower < subscriber < moderator < broadcaster < owner`. A broadcaster creates streams
//!   in the channel and moderates all of its streams; a moderator moderates all of its
//!   streams; a subscriber passes both `followers` and `subscribers` chat modes;
//! - only the owner grants and revokes roles; a user may follow a channel (take the
//!   `follower` role when holding none) and leave it (drop their own role) by themselves;
//! - a user holding no role in an existing channel cannot create streams in it
//!   ([`may_stream`]).

use serde::{Deserialize, Serialize};

use crate::stream::Visibility;
use crate::time::{Timestamp, rfc3339_millis};
use crate::validate::{self, ValidationError};

/// A role in a channel, ranked by the order of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelRole {
    Follower,
    Subscriber,
    Moderator,
    Broadcaster,
    Owner,
}

impl ChannelRole {
    pub const GRANTABLE: [ChannelRole; 4] = [
        ChannelRole::Follower,
        ChannelRole::Subscriber,
        ChannelRole::Moderator,
        ChannelRole::Broadcaster,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelRole::Follower => "follower",
            ChannelRole::Subscriber => "subscriber",
            ChannelRole::Moderator => "moderator",
            ChannelRole::Broadcaster => "broadcaster",
            ChannelRole::Owner => "owner",
        }
    }

    /// The stored name back; `None` for anything else (an item a newer version wrote is
    /// then treated as no role, never as a higher one).
    pub fn parse(name: &str) -> Option<ChannelRole> {
        [
            ChannelRole::Follower,
            ChannelRole::Subscriber,
            ChannelRole::Moderator,
            ChannelRole::Broadcaster,
            ChannelRole::Owner,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// May a user holding `role` create streams in the channel?
pub fn may_stream(role: Option<ChannelRole>) -> bool {
    role >= Some(ChannelRole::Broadcaster)
}

/// Does a user holding `role` moderate every stream of the channel?
pub fn moderates(role: Option<ChannelRole>) -> bool {
    role >= Some(ChannelRole::Moderator)
}

/// May a user see (get, play, join, chat in) a stream of `visibility`? `owns` says whether
/// they own the stream, `role` is theirs in its channel. Members means subscriber and
/// above: following is self-service, so it opens nothing.
pub fn may_view(visibility: Visibility, owns: bool, role: Option<ChannelRole>) -> bool {
    match visibility {
        Visibility::Public | Visibility::Unlisted => true,
        Visibility::Members => owns || role >= Some(ChannelRole::Subscriber),
    }
}

/// Which streams besides public ones a listing shows its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListScope {
    /// Members-only streams of the channel.
    pub members: bool,
    /// Unlisted streams of the channel.
    pub unlisted: bool,
    /// The caller's own streams, whatever their visibility.
    pub owner_id: Option<String>,
    /// Every stream: the system's own listings (pre-warm, the ingest sweep), never a
    /// caller's.
    pub all: bool,
}

impl ListScope {
    /// Public streams only: anonymous callers, and listings across channels.
    pub fn public() -> ListScope {
        ListScope::default()
    }

    /// Every stream, for the system's own work.
    pub fn all() -> ListScope {
        ListScope {
            all: true,
            ..ListScope::default()
        }
    }

    /// A channel's listing for a signed-in caller holding `role` in it.
    pub fn in_channel(user_id: &str, role: Option<ChannelRole>) -> ListScope {
        ListScope {
            members: may_view(Visibility::Members, false, role),
            unlisted: moderates(role),
            owner_id: Some(user_id.to_owned()),
            all: false,
        }
    }
}

/// May a user holding `role` see the channel's member list?
pub fn sees_members(role: Option<ChannelRole>) -> bool {
    moderates(role)
}

/// Why a membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The caller may not make this change (403).
    NotAllowed(&'static str),
    /// The change contradicts the channel's state (409): the owner's own role.
    OwnerRole,
    /// The requested role cannot be granted at all (422).
    NotGrantable,
}

/// Decides whether `caller` (holding `caller_role`) may set `target`'s role (holding
/// `target_role` now) to `new` (`None`: remove it).
pub fn authorize_membership(
    caller: &str,
    caller_role: Option<ChannelRole>,
    target: &str,
    target_role: Option<ChannelRole>,
    new: Option<ChannelRole>,
) -> Result<(), Denial> {
    if new == Some(ChannelRole::Owner) {
        return Err(Denial::NotGrantable);
    }
    if target_role == Some(ChannelRole::Owner) {
        return if caller_role == Some(ChannelRole::Owner) || caller == target {
            Err(Denial::OwnerRole)
        } else {
            Err(Denial::NotAllowed(
                "only the channel's owner manages its roles",
            ))
        };
    }
    if caller_role == Some(ChannelRole::Owner) {
        return Ok(());
    }
    if caller == target {
        match new {
            // Leaving: anyone may drop their own role.
            None => return Ok(()),
            // Following: open to anyone who holds no role yet (not a way to step down, which
            // is leaving, nor up).
            Some(ChannelRole::Follower) if target_role.is_none() => return Ok(()),
            Some(ChannelRole::Follower) if target_role == Some(ChannelRole::Follower) => {
                return Ok(());
            }
            _ => {}
        }
    }
    Err(Denial::NotAllowed(
        "only the channel's owner grants roles; users may only follow or leave by themselves",
    ))
}

/// A channel as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: String,
    /// Streams ever created in the channel.
    pub stream_count: u64,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
}

/// What a client sends to create a channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewChannel {
    /// The channel's id, as streams name it in `channelId`; generated when absent (`null`
    /// is refused, as the schema says).
    #[serde(default, deserialize_with = "crate::stream::not_null")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl Channel {
    /// A new channel from validated input; `generated_id` is used when the input names none.
    pub fn create(
        generated_id: String,
        owner_id: String,
        input: NewChannel,
        now: Timestamp,
    ) -> Result<Channel, ValidationError> {
        let id = input.id.unwrap_or(generated_id);
        validate::channel_id(&id).map_err(|e| ValidationError {
            field: "id",
            message: e.message,
        })?;
        Ok(Channel {
            id,
            name: validate::channel_name(&input.name)?,
            description: validate::description(&input.description)?,
            owner_id,
            stream_count: 0,
            created_at: now,
        })
    }

    /// The channel a stream creates when it names a channel id nobody holds: named after
    /// its id, owned by the stream's owner.
    pub fn implicit(id: &str, owner_id: &str, now: Timestamp) -> Channel {
        Channel {
            id: id.to_owned(),
            name: id.to_owned(),
            description: String::new(),
            owner_id: owner_id.to_owned(),
            stream_count: 0,
            created_at: now,
        }
    }
}

/// One user's role in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub user_id: String,
    pub role: ChannelRole,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelRole::*;

    #[test]
    fn roles_rank_from_follower_to_owner() {
        assert!(Follower < Subscriber && Subscriber < Moderator);
        assert!(Moderator < Broadcaster && Broadcaster < Owner);
        assert!(None < Some(Follower));
    }

    #[test]
    fn only_broadcasters_and_the_owner_stream() {
        assert!(!may_stream(None));
        assert!(!may_stream(Some(Subscriber)));
        assert!(!may_stream(Some(Moderator)));
        assert!(may_stream(Some(Broadcaster)));
        assert!(may_stream(Some(Owner)));
    }

    #[test]
    fn moderators_broadcasters_and_the_owner_moderate() {
        assert!(!moderates(Some(Subscriber)));
        assert!(moderates(Some(Moderator)));
        assert!(moderates(Some(Broadcaster)));
        assert!(moderates(Some(Owner)));
    }

    #[test]
    fn the_owner_grants_and_revokes_every_grantable_role() {
        for role in ChannelRole::GRANTABLE {
            assert_eq!(
                authorize_membership("o", Some(Owner), "u", None, Some(role)),
                Ok(())
            );
            assert_eq!(
                authorize_membership("o", Some(Owner), "u", Some(role), None),
                Ok(())
            );
        }
    }

    #[test]
    fn ownership_is_never_granted_nor_taken() {
        assert_eq!(
            authorize_membership("o", Some(Owner), "u", None, Some(Owner)),
            Err(Denial::NotGrantable)
        );
        assert_eq!(
            authorize_membership("o", Some(Owner), "o", Some(Owner), None),
            Err(Denial::OwnerRole)
        );
        assert_eq!(
            authorize_membership("o", Some(Owner), "o", Some(Owner), Some(Follower)),
            Err(Denial::OwnerRole)
        );
        assert!(matches!(
            authorize_membership("b", Some(Broadcaster), "o", Some(Owner), None),
            Err(Denial::NotAllowed(_))
        ));
    }

    #[test]
    fn users_follow_and_leave_by_themselves_but_grant_nothing() {
        assert_eq!(
            authorize_membership("u", None, "u", None, Some(Follower)),
            Ok(())
        );
        assert_eq!(
            authorize_membership("u", Some(Moderator), "u", Some(Moderator), None),
            Ok(())
        );
        for role in [Subscriber, Moderator, Broadcaster] {
            assert!(matches!(
                authorize_membership("u", None, "u", None, Some(role)),
                Err(Denial::NotAllowed(_))
            ));
        }
        // Following is not a way to step down from a granted role either.
        assert!(matches!(
            authorize_membership("u", Some(Subscriber), "u", Some(Subscriber), Some(Follower)),
            Err(Denial::NotAllowed(_))
        ));
        // Nobody but the owner touches another user's role, moderators and broadcasters
        // included.
        for caller in [None, Some(Follower), Some(Moderator), Some(Broadcaster)] {
            assert!(matches!(
                authorize_membership("c", caller, "u", None, Some(Follower)),
                Err(Denial::NotAllowed(_))
            ));
        }
    }

    #[test]
    fn a_channel_is_created_with_a_valid_id_and_name() {
        let now = crate::time::now();
        let input = |v| serde_json::from_value::<NewChannel>(v).unwrap();
        let c = Channel::create(
            "gen".into(),
            "o".into(),
            input(serde_json::json!({"name":" Music "})),
            now,
        )
        .unwrap();
        assert_eq!((c.id.as_str(), c.name.as_str()), ("gen", "Music"));
        let bad = Channel::create(
            "gen".into(),
            "o".into(),
            input(serde_json::json!({"id":"a#b","name":"x"})),
            now,
        );
        assert_eq!(bad.unwrap_err().field, "id");
        let bad = Channel::create(
            "gen".into(),
            "o".into(),
            input(serde_json::json!({"name":"  "})),
            now,
        );
        assert_eq!(bad.unwrap_err().field, "name");
        assert!(
            serde_json::from_value::<NewChannel>(serde_json::json!({"id":null,"name":"x"}))
                .is_err()
        );
    }

    #[test]
    fn members_only_streams_are_for_subscribers_and_up_and_the_owner() {
        use Visibility::*;
        for v in [Public, Unlisted] {
            assert!(may_view(v, false, None));
        }
        assert!(!may_view(Members, false, None));
        assert!(
            !may_view(Members, false, Some(Follower)),
            "following is self-service"
        );
        assert!(may_view(Members, false, Some(Subscriber)));
        assert!(may_view(Members, true, None));
        let scope = ListScope::in_channel("u", Some(Subscriber));
        assert!(scope.members && !scope.unlisted);
        assert!(ListScope::in_channel("u", Some(Moderator)).unlisted);
        assert_eq!(ListScope::public(), ListScope::default());
    }

    #[test]
    fn unknown_stored_roles_parse_as_none() {
        assert_eq!(ChannelRole::parse("broadcaster"), Some(Broadcaster));
        assert_eq!(ChannelRole::parse("admin"), None);
    }
}
