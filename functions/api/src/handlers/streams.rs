//! Stream lifecycle, settings, keys, listings, playback URL and viewer count.
//!
//! Pre-warm (see `rill_core::prewarm`): create and reschedule keep a scheduled stream's
//! one-time schedule at its start − 10 min; start and cancel delete it. Those calls go to the
//! scheduler, not to storage, and come *after* the stream's write: a scheduler failure never
//! fails or undoes the request (the write stands, the failure is logged, and the
//! `ingest-prewarm` reconciler, which runs every 5 minutes, counts the stream anyway). The
//! storage-call budget of each handler is unchanged by pre-warming.
//!
//! Reminders (see `rill_core::notification`) follow the same rule: create, a reschedule or
//! a change of the notification settings upsert one schedule per reminder still ahead and
//! delete the ones the stream no longer has; start and cancel delete them all. A schedule
//! left behind by a failed delete sends nothing: `notifications-send` re-checks the stream.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::channel::ListScope;
use rill_core::key::StreamKey;
use rill_core::store::{ListQuery, Listing};
use rill_core::stream::{NewStream, StreamPatch, Visibility};
use rill_core::{Command, Stream, StreamStatus, ids, notification, prewarm, time, validate};
use serde::Serialize;
use serde_json::json;

use super::{ensure_owner, load_stream};
use crate::app::PublicUrls;
use crate::request::{bool_param, id_param, json, json_body, json_no_store, query_param};
use crate::{ApiError, App};

/// Ingest credentials. `stream_key` is set only in the responses to create and rotate.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ingest {
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_key: Option<String>,
    whip_url: String,
    /// Server URL for OBS "Custom" (the key goes in OBS's own field).
    rtmp_server_url: String,
    /// Full push URL, key included; only alongside the key itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmp_url: Option<String>,
}

impl Ingest {
    fn new(urls: &PublicUrls, req: &Request, stream_id: &str, key: Option<&StreamKey>) -> Ingest {
        Ingest {
            stream_key: key.map(|k| k.expose().to_owned()),
            whip_url: format!("{}/whip/{stream_id}", urls.ingest.resolve(req)),
            rtmp_server_url: urls.rtmp.clone(),
            rtmp_url: key.map(|k| format!("{}/{}", urls.rtmp, k.expose())),
        }
    }
}

#[derive(Debug, Serialize)]
struct WithIngest<'a> {
    #[serde(flatten)]
    stream: &'a Stream,
    ingest: Ingest,
}

fn new_key() -> Result<StreamKey, ApiError> {
    StreamKey::generate().map_err(|e| ApiError::Internal(format!("random source failed: {e}")))
}

/// Keeps the stream's pre-warm schedule where `stream` (as stored now) says: at
/// [`prewarm::prewarm_at`], or none. Never fails the request (module docs).
async fn reschedule_prewarm(app: &App, stream: &Stream, now: time::Timestamp) {
    let result = match prewarm::prewarm_at(stream, now) {
        Some(at) => app.prewarm.upsert(&stream.id, at).await,
        None => app.prewarm.delete(&stream.id).await,
    };
    if let Err(e) = result {
        tracing::warn!(stream_id = %stream.id, error = %e,
            "pre-warm schedule not updated; the ingest-prewarm reconciler still counts the stream");
    }
}

/// Deletes the stream's pre-warm schedule, if it may have one. Never fails the request.
async fn drop_prewarm(app: &App, before: &Stream) {
    if before.scheduled_at.is_none() {
        return;
    }
    if let Err(e) = app.prewarm.delete(&before.id).await {
        tracing::warn!(stream_id = %before.id, error = %e,
            "pre-warm schedule not deleted; it fires once, finds nothing to warm and deletes itself");
    }
}

/// Moves the stream's reminder schedules from what `before` had (`None`: just created) to
/// what `after` should have ([`notification::reminder_changes`]), all calls at once. Never
/// fails the request (module docs).
async fn sync_reminders(app: &App, before: Option<&Stream>, after: &Stream, now: time::Timestamp) {
    let (upserts, deletes) = notification::reminder_changes(before, after, now);
    let upserts = upserts.into_iter().map(|(minutes, at)| async move {
        (minutes, app.reminders.upsert(&after.id, minutes, at).await)
    });
    let deletes = deletes
        .into_iter()
        .map(|minutes| async move { (minutes, app.reminders.delete(&after.id, minutes).await) });
    let (upserted, deleted) = futures_util::future::join(
        futures_util::future::join_all(upserts),
        futures_util::future::join_all(deletes),
    )
    .await;
    for (minutes, result) in upserted {
        if let Err(e) = result {
            tracing::warn!(stream_id = %after.id, minutes, error = %e,
                "reminder schedule not written; this reminder will not be sent");
        }
    }
    for (minutes, result) in deleted {
        if let Err(e) = result {
            tracing::warn!(stream_id = %after.id, minutes, error = %e,
                "reminder schedule not deleted; it fires, finds the reminder not due, sends nothing");
        }
    }
}

/// Whether a change from `before` to `after` can change the stream's reminders.
fn reminders_changed(before: &Stream, after: &Stream) -> bool {
    before.status != after.status
        || before.scheduled_at != after.scheduled_at
        || before.settings.notifications != after.settings.notifications
}

/// `POST /api/streams/create`: by the channel's owner or a broadcaster, or by anyone in a
/// channel id nobody holds yet (which makes them its owner). Storage: one read of the
/// caller's channel role, one transactional write. Pre-warm: a stream
/// scheduled more than 10 min ahead gets its one-time schedule (one scheduler call, two if
/// a schedule of that name exists).
pub async fn create(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let input: NewStream = json_body(&req)?;
    let now = time::now();
    let stream = Stream::create(ids::new_id(), user.user_id, input, now)?;
    let key = new_key()?;
    app.streams.create_stream(&stream, &key.hash()).await?;
    tracing::info!(stream_id = %stream.id, status = %stream.status, "stream created");
    if prewarm::prewarm_at(&stream, now).is_some() {
        reschedule_prewarm(&app, &stream, now).await;
    }
    sync_reminders(&app, None, &stream, now).await;
    let ingest = Ingest::new(&app.urls, &req, &stream.id, Some(&key));
    json_no_store(
        201,
        &WithIngest {
            stream: &stream,
            ingest,
        },
    )
}

async fn command(
    app: Arc<App>,
    req: Request,
    command: Command,
) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let before = load_stream(&app, &req, &id).await?;
    ensure_owner(&before, &user.user_id)?;
    let now = time::now();
    let stream = app.streams.apply(&id, command, now).await?;
    tracing::info!(stream_id = %id, status = %stream.status, ?command, "stream command applied");
    if matches!(command, Command::Start | Command::Cancel) {
        drop_prewarm(&app, &before).await;
        if before.scheduled_at.is_some() {
            sync_reminders(&app, Some(&before), &stream, now).await;
        }
    }
    json(200, &stream)
}

/// `POST /api/streams/{id}/start`: `scheduled -> preparing`, idempotent on `preparing`.
/// Storage: one read, then the store's conditional transition. Pre-warm: a stream with a
/// start time has its schedule deleted (one scheduler call; also on the idempotent repeat,
/// which covers a stream an early publisher started). Reminders: each of the stream's is
/// deleted (one scheduler call per reminder, at once).
pub async fn start(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::Start).await
}

/// `POST /api/streams/{id}/end`
pub async fn end(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::End).await
}

/// `POST /api/streams/{id}/cancel`. Storage: as start. Pre-warm and reminders: as start.
pub async fn cancel(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::Cancel).await
}

/// `PATCH /api/streams/{id}`: title, description, thumbnail, settings, and `scheduledAt`
/// of a `scheduled` stream (a reschedule; 409 `not_scheduled` in any other status).
/// Storage: one read, one conditional write. Pre-warm: only a reschedule touches the
/// schedule: moved to the new start − 10 min (one or two scheduler calls), or deleted when
/// the new start is less than 10 min away (one call). Reminders: a reschedule or a change
/// of `settings.notifications` upserts the ones still ahead and deletes the rest (one call
/// per reminder, at once).
pub async fn update(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let patch: StreamPatch = json_body(&req)?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    if patch.scheduled_at.is_some() && stream.status != StreamStatus::Scheduled {
        return Err(ApiError::conflict(
            "not_scheduled",
            format!(
                "only a scheduled stream can be rescheduled; this one is {}",
                stream.status
            ),
        ));
    }
    if let Some(v) = patch.visibility
        && stream.started_at.is_some()
        && (v == Visibility::Members) != (stream.visibility == Visibility::Members)
    {
        // Its media is stored under a prefix chosen by membership (`members/` is served
        // only with a signed grant); moving the objects of a live or recorded stream is
        // not worth the risk of serving them under the wrong rule for a moment.
        return Err(ApiError::conflict(
            "visibility_locked",
            "a stream that has gone live cannot switch members-only on or off",
        ));
    }
    let now = time::now();
    let updated = stream.patched(&patch, now)?;
    let stored = app.streams.update_stream(&updated).await?;
    if patch.scheduled_at.is_some() {
        tracing::info!(stream_id = %id, scheduled_at = ?stored.scheduled_at, "stream rescheduled");
        reschedule_prewarm(&app, &stored, now).await;
    }
    if reminders_changed(&stream, &stored) {
        sync_reminders(&app, Some(&stream), &stored, now).await;
    }
    json(200, &stored)
}

/// `POST /api/streams/{id}/key`: a new key; the old one stops working at once.
pub async fn rotate_key(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    if stream.status.is_final() {
        return Err(ApiError::conflict(
            "stream_over",
            format!("the stream is {}", stream.status),
        ));
    }
    let key = new_key()?;
    app.streams
        .rotate_key(&id, &key.hash(), time::now())
        .await?;
    tracing::info!(stream_id = %id, "stream key rotated");
    json_no_store(200, &Ingest::new(&app.urls, &req, &id, Some(&key)))
}

/// How long a thumbnail upload URL stays valid.
const THUMBNAIL_UPLOAD_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThumbnailRequest {
    content_type: String,
    #[serde(deserialize_with = "rill_core::json_int::u64")]
    content_length: u64,
}

/// `POST /api/streams/{id}/thumbnail` (owner): a presigned `PUT` for a new thumbnail image
/// and the URL it will have. Nothing changes on the stream until the owner PATCHes
/// `thumbnailUrl`, so an upload that never happens leaves the stream as it was.
pub async fn thumbnail_upload(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let body: ThumbnailRequest = json_body(&req)?;
    let ext = validate::thumbnail_type(&body.content_type)?;
    validate::thumbnail_size(body.content_length)?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    // A fresh key per upload: CDN copies of an older image never mask the new one.
    let key = format!("thumbnails/{id}/{}.{ext}", ids::new_id());
    let signed = app
        .uploads
        .sign_put(
            &key,
            &body.content_type,
            body.content_length,
            THUMBNAIL_UPLOAD_WINDOW,
        )
        .await?;
    let headers: std::collections::BTreeMap<String, String> = signed.headers.into_iter().collect();
    json_no_store(
        200,
        &json!({
            "uploadUrl": signed.url,
            "method": "PUT",
            "headers": headers,
            "thumbnailUrl": format!("{}/{key}", app.urls.hls),
            "expiresAt": time::format(&signed.expires_at),
        }),
    )
}

/// `GET /api/streams/{id}`; `?ingest=true` adds the ingest URLs (never the key) for the owner.
pub async fn get(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.principal(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &req, &id).await?;
    let wants_ingest = bool_param(&req, "ingest")?;
    if !wants_ingest {
        return json(200, &stream);
    }
    let caller = caller.ok_or(ApiError::Unauthorized("sign in to see ingest settings"))?;
    ensure_owner(&stream, &caller.user_id)?;
    json(
        200,
        &WithIngest {
            ingest: Ingest::new(&app.urls, &req, &id, None),
            stream: &stream,
        },
    )
}

/// `GET /api/streams/live|scheduled|past?channelId=&limit=&cursor=`: one function, three
/// routes; the route decides the listing. Storage: one query (plus one role read for a
/// signed-in caller's channel listing).
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path();
    let listing = if path.ends_with("/live") {
        Listing::Live
    } else if path.ends_with("/scheduled") {
        Listing::Scheduled
    } else if path.ends_with("/past") {
        Listing::Past
    } else {
        return Err(ApiError::NotFound("listing"));
    };
    let channel_id = query_param(&req, "channelId");
    if let Some(c) = &channel_id {
        validate::channel_id(c).map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    }
    let limit = validate::limit(query_param(&req, "limit").as_deref(), 20, 100)
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    // Across channels only public streams list; a channel's listing also shows a signed-in
    // caller their own streams and what their role there opens (`rill_core::channel`).
    let scope = match (&channel_id, app.auth.principal(&req).await?) {
        (Some(channel), Some(caller)) => ListScope::in_channel(
            &caller.user_id,
            app.channels.channel_role(channel, &caller.user_id).await?,
        ),
        _ => ListScope::public(),
    };
    let query = ListQuery {
        listing,
        channel_id,
        limit,
        cursor: query_param(&req, "cursor"),
        scope,
    };
    let page = app.streams.list_streams(&query).await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

/// How long a grant to members-only media lasts; players fetch a new one before it ends.
pub const MEDIA_GRANT_SECONDS: i64 = 3600;

/// `GET /api/streams/{id}/hls`: the master playlist on the CDN, once there is media
/// (live, or ended and replayable). A members-only stream's media is under `members/` and
/// the answer carries a grant for it (only callers `load_stream` lets see the stream get
/// here): `access.query` for the player to add to every media request, and the same
/// values as CloudFront signed cookies scoped to the stream's path.
pub async fn hls(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &req, &id).await?;
    if !matches!(stream.status, StreamStatus::Live | StreamStatus::Ended)
        || stream.started_at.is_none()
    {
        return Err(ApiError::conflict(
            "not_playable",
            format!("the stream is {} and has no media", stream.status),
        ));
    }
    if stream.visibility != Visibility::Members {
        return json(
            200,
            &json!({"manifestUrl": format!("{}/live/{id}/master.m3u8", app.urls.hls)}),
        );
    }
    let Some(signer) = &app.media_signer else {
        return Err(ApiError::Unavailable {
            code: "media_signing_unavailable",
            message: "members-only media cannot be signed here (no signing key configured)".into(),
            retry_after_secs: 60,
        });
    };
    let prefix = format!("{}/{}", app.urls.hls, rill_core::media::members_prefix(&id));
    let expires = time::now() + chrono::Duration::seconds(MEDIA_GRANT_SECONDS);
    let grant = signer.grant(&format!("{prefix}/*"), expires.timestamp());
    let mut res = json_no_store(
        200,
        &json!({
            "manifestUrl": format!("{prefix}/master.m3u8"),
            "access": {"query": grant.query(), "expiresAt": time::format(&expires)},
        }),
    )?;
    // Cookies for players that cannot add a query (and CDNs on the app's own domain):
    // scoped to the stream's objects, gone when the browser closes.
    let path = cookie_path(&prefix);
    for (name, value) in grant.cookies() {
        let cookie = format!("{name}={value}; Path={path}; Secure; HttpOnly; SameSite=Lax");
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            res.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// The path part of a URL prefix, with a trailing slash (`https://cdn/x/members/s1` ->
/// `/x/members/s1/`).
fn cookie_path(prefix: &str) -> String {
    let rest = prefix.split_once("://").map_or(prefix, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    format!("{}/", path.trim_end_matches('/'))
}

/// `GET /api/streams/{id}/viewers`
pub async fn viewers(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &req, &id).await?;
    json(
        200,
        // The stored peak is raised by `events-fanout` within its batch window; never
        // report it below the count it must include.
        &json!({"count": stream.stats.current_viewers,
                "peak": stream.stats.peak_viewers.max(stream.stats.current_viewers)}),
    )
}
