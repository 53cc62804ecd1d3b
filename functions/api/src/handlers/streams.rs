//! Stream lifecycle, settings, keys, listings, playback URL and viewer count.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::key::StreamKey;
use rill_core::store::{ListQuery, Listing};
use rill_core::stream::{NewStream, StreamPatch};
use rill_core::{Command, Stream, StreamStatus, ids, time, validate};
use serde::Serialize;
use serde_json::json;

use super::{ensure_owner, load_stream};
use crate::app::PublicUrls;
use crate::request::{id_param, json, json_body, json_no_store, query_param};
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

/// `POST /api/streams/create`
pub async fn create(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let input: NewStream = json_body(&req)?;
    let stream = Stream::create(ids::new_id(), user.user_id, input, time::now())?;
    let key = new_key()?;
    app.streams.create_stream(&stream, &key.hash()).await?;
    tracing::info!(stream_id = %stream.id, status = %stream.status, "stream created");
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
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    let stream = app.streams.apply(&id, command, time::now()).await?;
    tracing::info!(stream_id = %id, status = %stream.status, ?command, "stream command applied");
    json(200, &stream)
}

/// `POST /api/streams/{id}/start`: `scheduled -> preparing`, idempotent on `preparing`.
pub async fn start(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::Start).await
}

/// `POST /api/streams/{id}/end`
pub async fn end(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::End).await
}

/// `POST /api/streams/{id}/cancel`
pub async fn cancel(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    command(app, req, Command::Cancel).await
}

/// `PATCH /api/streams/{id}`: title, description, thumbnail, settings.
pub async fn update(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let patch: StreamPatch = json_body(&req)?;
    let stream = load_stream(&app, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    let updated = stream.patched(&patch, time::now())?;
    let stored = app.streams.update_stream(&updated).await?;
    json(200, &stored)
}

/// `POST /api/streams/{id}/key`: a new key; the old one stops working at once.
pub async fn rotate_key(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &id).await?;
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
    content_length: u64,
}

/// `POST /api/streams/{id}/thumbnail` (owner): a presigned `PUT` for a new thumbnail image
/// and the URL it will have. Nothing changes on the stream until the owner PATCHes
/// `thumbnailUrl`, so an upload that never happens leaves the stream as it was.
pub async fn thumbnail_upload(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let body: ThumbnailRequest = json_body(&req)?;
    let ext = validate::thumbnail_type(&body.content_type)?;
    validate::thumbnail_size(body.content_length)?;
    let stream = load_stream(&app, &id).await?;
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
    let caller = app.auth.principal(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &id).await?;
    let wants_ingest = match query_param(&req, "ingest").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::InvalidQuery(
                "ingest must be true or false".into(),
            ));
        }
    };
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
/// routes; the route decides the listing.
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
    let query = ListQuery {
        listing,
        channel_id,
        limit,
        cursor: query_param(&req, "cursor"),
    };
    let page = app.streams.list_streams(&query).await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

/// `GET /api/streams/{id}/hls`: the master playlist on the CDN, once there is media
/// (live, or ended and replayable).
pub async fn hls(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &id).await?;
    match stream.status {
        StreamStatus::Live | StreamStatus::Ended if stream.started_at.is_some() => json(
            200,
            &json!({"manifestUrl": format!("{}/live/{id}/master.m3u8", app.urls.hls)}),
        ),
        status => Err(ApiError::conflict(
            "not_playable",
            format!("the stream is {status} and has no media"),
        )),
    }
}

/// `GET /api/streams/{id}/viewers`
pub async fn viewers(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let stream = load_stream(&app, &id).await?;
    json(
        200,
        &json!({"count": stream.stats.current_viewers, "peak": stream.stats.peak_viewers}),
    )
}
