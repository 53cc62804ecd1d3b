//! Sharded fan-out: the port a fan-out uses to hand part of a large audience to another
//! worker ([`ShardDispatcher`]), and the payload that worker receives ([`FanoutShard`]).
//!
//! A fan-out delivers a few frames (the serialized `stream:*` events of one batch) to
//! every connection of a stream. Past a shard size the connection ids are split; each
//! shard carries all the frames, so every connection still gets every frame once, in
//! order. The port knows nothing of how a shard is run (on AWS: an asynchronous Lambda
//! invocation); an implementation with a payload limit splits a shard further with
//! [`split_to_fit`].
//!
//! Invariants: a shard never loses or duplicates a connection id when split; frames are
//! never split across shards (a connection's frames stay in one worker, in order).

use serde::{Deserialize, Serialize};

/// The work of one shard: every frame to every connection id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutShard {
    pub stream_id: String,
    /// Serialized `Event`s, in the order every connection must receive them.
    pub frames: Vec<serde_json::Value>,
    pub connection_ids: Vec<String>,
}

/// What a shard worker did (also the worker's answer).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    /// Frames posted (frames x connections that took them).
    pub delivered: usize,
    /// Connections removed after a 410.
    pub pruned: usize,
    /// Posts that failed otherwise (timeouts, throttling).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Even one connection with all the frames exceeds the transport's payload limit.
    #[error("shard payload of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("dispatch failed: {0}")]
    Failed(String),
}

/// Runs a shard somewhere else, without waiting for its deliveries: `Ok` means the shard
/// was accepted (queued), not delivered. A caller that gets an error still owns the shard
/// and must deliver it itself.
#[async_trait::async_trait]
pub trait ShardDispatcher: Send + Sync {
    async fn dispatch(&self, shard: FanoutShard) -> Result<(), DispatchError>;
}

/// Serialized size of a shard, as a dispatcher would send it.
pub fn payload_bytes(shard: &FanoutShard) -> usize {
    serde_json::to_vec(shard).map_or(usize::MAX, |v| v.len())
}

/// Splits `shard` into shards whose serialized payload is at most `limit` bytes, by halving
/// its connection ids (frames go whole into each part). Fails when one connection with all
/// the frames is already over the limit.
pub fn split_to_fit(shard: FanoutShard, limit: usize) -> Result<Vec<FanoutShard>, DispatchError> {
    let bytes = payload_bytes(&shard);
    if bytes <= limit {
        return Ok(vec![shard]);
    }
    if shard.connection_ids.len() <= 1 {
        return Err(DispatchError::TooLarge { bytes, limit });
    }
    let FanoutShard {
        stream_id,
        frames,
        mut connection_ids,
    } = shard;
    let second = connection_ids.split_off(connection_ids.len() / 2);
    let mut out = split_to_fit(
        FanoutShard {
            stream_id: stream_id.clone(),
            frames: frames.clone(),
            connection_ids,
        },
        limit,
    )?;
    out.extend(split_to_fit(
        FanoutShard {
            stream_id,
            frames,
            connection_ids: second,
        },
        limit,
    )?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shard(ids: usize, frame_bytes: usize) -> FanoutShard {
        FanoutShard {
            stream_id: "s1".into(),
            frames: vec![json!({"type": "stream:chat-message", "data": "x".repeat(frame_bytes)})],
            connection_ids: (0..ids).map(|i| format!("conn-{i:06}=")).collect(),
        }
    }

    #[test]
    fn a_shard_that_fits_is_left_whole() {
        let s = shard(10, 100);
        assert_eq!(split_to_fit(s.clone(), 256 * 1024).unwrap(), vec![s]);
    }

    #[test]
    fn splitting_keeps_every_id_once_and_every_frame_in_each_part() {
        let s = shard(5_000, 2_000);
        let parts = split_to_fit(s.clone(), 16 * 1024).unwrap();
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| payload_bytes(p) <= 16 * 1024));
        assert!(parts.iter().all(|p| p.frames == s.frames));
        let ids: Vec<String> = parts.into_iter().flat_map(|p| p.connection_ids).collect();
        assert_eq!(ids, s.connection_ids);
    }

    #[test]
    fn frames_too_large_for_one_connection_are_refused() {
        let err = split_to_fit(shard(3, 300_000), 256 * 1024).unwrap_err();
        assert!(matches!(err, DispatchError::TooLarge { .. }));
    }
}
