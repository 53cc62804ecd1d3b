//! Loading a stream another node was writing ([`crate::package::resume`]) from the bucket:
//! the master playlist's renditions, each media playlist, and the first object names that
//! are still free.
//!
//! Cost: one GET per playlist plus one HEAD per name probed (normally one for the segment
//! and one for the init of each rendition: only a segment or init stored without a playlist
//! update before the old node died makes the probe go further).

use crate::package::resume::{self, Resume, ResumedTrack};
use crate::package::{self, MASTER_PLAYLIST};
use crate::upload::Uploader;

/// Probing stops here: a dead node leaves at most a handful of unlisted objects, so more
/// means something else is writing under this stream.
const MAX_PROBE: u64 = 64;

/// Why a takeover cannot continue the stream's playlists.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("bucket: {0}")]
    Bucket(#[from] crate::upload::UploadError),
    #[error("{name}: {source}")]
    Playlist {
        name: String,
        source: resume::ParseError,
    },
    #[error("{0}: more than {MAX_PROBE} unlisted objects")]
    TooManyUnlisted(String),
}

/// `None` when the stream has no master playlist yet (it never went live anywhere: start
/// fresh); otherwise every rendition it names, ready to continue.
pub async fn load(uploader: &Uploader) -> Result<Option<Resume>, TakeoverError> {
    let Some(master) = uploader.get(MASTER_PLAYLIST).await? else {
        return Ok(None);
    };
    let mut tracks = Vec::new();
    for uri in resume::master_uris(&String::from_utf8_lossy(&master)) {
        let Some(name) = uri.strip_suffix("/index.m3u8") else {
            continue;
        };
        let Some(text) = uploader.get(&uri).await? else {
            continue;
        };
        let playlist =
            resume::parse_media_playlist(&String::from_utf8_lossy(&text)).map_err(|source| {
                TakeoverError::Playlist {
                    name: uri.clone(),
                    source,
                }
            })?;
        let (seg, init) = Resume::listed_high_marks(&playlist);
        let mut next_object = seg.map_or(0, |n| n + 1);
        let mut probed = 0;
        while uploader
            .exists(&package::segment_object_name(name, next_object))
            .await?
        {
            next_object += 1;
            probed += 1;
            if probed > MAX_PROBE {
                return Err(TakeoverError::TooManyUnlisted(uri));
            }
        }
        let mut next_init = init.map_or(0, |g| g + 1);
        while uploader
            .exists(&package::init_object_name(name, next_init))
            .await?
        {
            next_init += 1;
            if u64::from(next_init) > MAX_PROBE + init.map_or(0, u64::from) {
                return Err(TakeoverError::TooManyUnlisted(uri));
            }
        }
        tracks.push(ResumedTrack {
            name: name.to_owned(),
            playlist,
            next_object,
            next_init,
        });
    }
    Ok(Some(Resume { tracks }))
}

/// Closes a stream whose node died and whose publisher never came back: every playlist
/// another node left gets `#EXT-X-ENDLIST` (the recording becomes VOD), then the stream is
/// marked ended. The caller holds the stream's lease.
pub async fn finalise_orphan(
    uploader: &Uploader,
    store: &dyn rill_core::store::StreamStore,
    stream_id: &str,
) -> Result<(), TakeoverError> {
    if let Some(resume) = load(uploader).await? {
        for mut track in resume.tracks {
            track.playlist.end();
            uploader
                .put(
                    &package::media_playlist_object_name(&track.name),
                    bytes::Bytes::from(track.playlist.render()),
                    crate::upload::ObjectKind::Playlist,
                )
                .await?;
        }
    }
    super::publisher::mark_ended(store, stream_id).await;
    Ok(())
}
