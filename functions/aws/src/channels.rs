//! Channels in the table: the channel (`CHANNEL#{id}` / `META`, holding its owner) and one
//! item per granted role (`CHANNEL#{id}` / `MEMBER#{user}`), plus the channel half of
//! creating a stream.
//!
//! Invariants: the owner is named only on the channel item, written once with
//! `attribute_not_exists(pk)`, and never in a membership item (every membership write is
//! conditional on the target not being the owner), so no write path can change who owns
//! a channel. A user's role is read with the channel item in one `BatchGetItem`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use rill_core::channel::{self, Channel, ChannelRole, Membership};
use rill_core::store::{ChannelStore, Page, StoreError};
use rill_core::stream::Stream;
use rill_core::time::{Timestamp, rfc3339_millis};

use crate::keys::{self, ItemKey};
use crate::store::{
    DynamoStore, Item, decode_item_cursor, encode_cursor, from_item, n, s, to_item, unavailable,
    unless_condition_failed,
};

/// The channel item as stored. Items written before channels had names (only `ownerId` and
/// `streamCount`) still read: the name falls back to the id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    owner_id: String,
    #[serde(default)]
    stream_count: u64,
    #[serde(with = "rfc3339_millis::option", default)]
    created_at: Option<Timestamp>,
}

impl ChannelItem {
    fn new(channel: &Channel) -> ChannelItem {
        let key = keys::channel(&channel.id);
        ChannelItem {
            pk: key.pk,
            sk: key.sk,
            entity: "channel".into(),
            id: Some(channel.id.clone()),
            name: Some(channel.name.clone()),
            description: channel.description.clone(),
            owner_id: channel.owner_id.clone(),
            stream_count: channel.stream_count,
            created_at: Some(channel.created_at),
        }
    }

    fn into_channel(self, id: &str) -> Channel {
        Channel {
            id: self.id.unwrap_or_else(|| id.to_owned()),
            name: self.name.unwrap_or_else(|| id.to_owned()),
            description: self.description,
            owner_id: self.owner_id,
            stream_count: self.stream_count,
            created_at: self.created_at.unwrap_or_default(),
        }
    }
}

pub(crate) fn role_of(item: &Item) -> Option<ChannelRole> {
    item.get("role")
        .and_then(|v| v.as_s().ok())
        .and_then(|r| ChannelRole::parse(r))
        // Only the channel item names the owner; a membership item claiming it is ignored.
        .filter(|r| *r != ChannelRole::Owner)
}

/// The owner named on a channel item.
pub(crate) fn owner_of(item: &Item) -> Option<String> {
    item.get("ownerId")
        .and_then(|v| v.as_s().ok())
        .map(String::to_owned)
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl DynamoStore {
    /// The channel's owner (`None`: no such channel) and the user's granted role, in one
    /// read. Also used by [`crate::realtime`]'s standing read, which adds its own keys.
    pub(crate) fn channel_role_of(
        owner: Option<&str>,
        member: Option<ChannelRole>,
        user_id: &str,
    ) -> Option<ChannelRole> {
        if owner == Some(user_id) {
            Some(ChannelRole::Owner)
        } else {
            member
        }
    }

    /// The channel (`None`: nobody holds the id) and the user's granted role, in one read.
    async fn channel_and_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<(Option<Channel>, Option<ChannelRole>), StoreError> {
        let keys = vec![
            keys::channel(channel_id).item(),
            keys::member(channel_id, user_id).item(),
        ];
        let (mut channel, mut member) = (None, None);
        for item in self.get_many_consistent(keys, "channel role").await? {
            match keys::parse_item(&item) {
                ItemKey::Channel { .. } => {
                    channel = Some(from_item::<ChannelItem>(item)?.into_channel(channel_id));
                }
                ItemKey::Member { .. } => member = role_of(&item),
                _ => {}
            }
        }
        Ok((channel, member))
    }

    /// The writes that file `stream` under its channel, for the stream's own transaction:
    /// count it on a channel its owner may stream in (and re-check that role, so a revoke
    /// racing the create wins), or create the channel for its owner when nobody holds it.
    pub(crate) async fn channel_writes_for(
        &self,
        stream: &Stream,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let (channel, member) = self
            .channel_and_member(&stream.channel_id, &stream.owner_id)
            .await?;
        let user = &stream.owner_id;
        let Some(owner) = channel.map(|c| c.owner_id) else {
            let mut created = Channel::implicit(&stream.channel_id, user, stream.created_at);
            created.stream_count = 1;
            let put = built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_item(&ChannelItem::new(&created))?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )?;
            return Ok(vec![TransactWriteItem::builder().put(put).build()]);
        };
        let role = Self::channel_role_of(Some(&owner), member, user);
        if !channel::may_stream(role) {
            return Err(StoreError::Forbidden(
                "streaming in this channel needs the broadcaster role from its owner",
            ));
        }
        let count = |condition: &str| {
            built(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::channel(&stream.channel_id).item()))
                    .update_expression("ADD streamCount :one")
                    .condition_expression(condition)
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":owner", s(&owner))
                    .build(),
            )
        };
        if role == Some(ChannelRole::Owner) {
            let update = count("ownerId = :owner")?;
            return Ok(vec![TransactWriteItem::builder().update(update).build()]);
        }
        let update = count("attribute_exists(pk) AND ownerId = :owner")?;
        let check = built(
            ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(keys::member(&stream.channel_id, user).item()))
                .condition_expression("#role = :broadcaster")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":broadcaster", s(ChannelRole::Broadcaster.as_str()))
                .build(),
        )?;
        Ok(vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().condition_check(check).build(),
        ])
    }
}

#[async_trait]
impl ChannelStore for DynamoStore {
    async fn create_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        let put = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&ChannelItem::new(channel))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match unless_condition_failed(put, "create channel")? {
            Some(_) => Ok(()),
            None => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
        self.get_consistent(keys::channel(id), "get channel")
            .await?
            .map(|i| from_item::<ChannelItem>(i).map(|c| c.into_channel(id)))
            .transpose()
    }

    async fn channel_with_role(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<(Channel, Option<ChannelRole>)>, StoreError> {
        let (channel, member) = self.channel_and_member(channel_id, user_id).await?;
        Ok(channel.map(|c| {
            let role = Self::channel_role_of(Some(&c.owner_id), member, user_id);
            (c, role)
        }))
    }

    async fn set_member(
        &self,
        channel_id: &str,
        user_id: &str,
        role: Option<ChannelRole>,
    ) -> Result<(), StoreError> {
        if role == Some(ChannelRole::Owner) {
            return Err(StoreError::Forbidden("ownership is never granted"));
        }
        let guard = built(
            ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(keys::channel(channel_id).item()))
                .condition_expression("attribute_exists(pk) AND ownerId <> :user")
                .expression_attribute_values(":user", s(user_id))
                .build(),
        )?;
        let key = keys::member(channel_id, user_id);
        let write = match role {
            Some(role) => {
                let mut item = key.item();
                item.insert("entity".into(), s("member"));
                item.insert("userId".into(), s(user_id));
                item.insert("role".into(), s(role.as_str()));
                TransactWriteItem::builder()
                    .put(built(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .build(),
                    )?)
                    .build()
            }
            None => TransactWriteItem::builder()
                .delete(built(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key.item()))
                        .build(),
                )?)
                .build(),
        };
        let items = vec![
            TransactWriteItem::builder().condition_check(guard).build(),
            write,
        ];
        match self.transact(items, "set member").await {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            Err(None) => match self.get_channel(channel_id).await? {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::Forbidden(
                    "the channel's owner keeps the owner role",
                )),
            },
        }
    }

    async fn members(
        &self,
        channel_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Membership>, StoreError> {
        let pk = keys::channel_pk(channel_id);
        let start = cursor
            .map(|c| decode_item_cursor(c, &pk, |k| matches!(k, ItemKey::Member { .. })))
            .transpose()?;
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":member", s(keys::members_prefix()))
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("list members", e.into_service_error()))?;
        let next_cursor = encode_cursor(out.last_evaluated_key());
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| match keys::parse_item(item) {
                ItemKey::Member { user_id, .. } => role_of(item).map(|role| Membership {
                    user_id: user_id.to_owned(),
                    role,
                }),
                _ => None,
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    #[test]
    fn only_the_channel_item_makes_an_owner() {
        let mut item = keys::member("c", "u").item();
        item.insert("role".into(), AttributeValue::S("owner".into()));
        assert_eq!(role_of(&item), None);
        item.insert("role".into(), AttributeValue::S("moderator".into()));
        assert_eq!(role_of(&item), Some(ChannelRole::Moderator));
        assert_eq!(
            DynamoStore::channel_role_of(Some("u"), Some(ChannelRole::Follower), "u"),
            Some(ChannelRole::Owner)
        );
        assert_eq!(DynamoStore::channel_role_of(Some("o"), None, "u"), None);
    }

    #[test]
    fn a_channel_item_of_the_first_shape_still_reads() {
        let mut item = keys::channel("legacy").item();
        item.insert("entity".into(), AttributeValue::S("channel".into()));
        item.insert("ownerId".into(), AttributeValue::S("o".into()));
        item.insert("streamCount".into(), AttributeValue::N("2".into()));
        let channel = from_item::<ChannelItem>(item)
            .unwrap()
            .into_channel("legacy");
        assert_eq!(
            (
                channel.name.as_str(),
                channel.owner_id.as_str(),
                channel.stream_count
            ),
            ("legacy", "o", 2)
        );
    }
}
