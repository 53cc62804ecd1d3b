//! Everything a handler needs, built once per function instance.

use std::sync::Arc;

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use rill_aws::AwsSettings;
use rill_aws::media_signing::MediaSigner;
use rill_aws::notify::ManagementApi;
use rill_aws::objects::S3Uploads;
use rill_aws::prewarm::EventBridgeSchedules;
use rill_aws::reminders::EventBridgeReminders;
use rill_aws::shards::LambdaShards;
use rill_aws::store::DynamoStore;
use rill_core::Stream;
use rill_core::fanout::ShardDispatcher;
use rill_core::fleet::FleetStore;
use rill_core::notification::{NoReminders, ReminderSchedule};
use rill_core::prewarm::{NoPrewarm, PrewarmSchedule};
use rill_core::realtime::{RateLimit, Standing};
use rill_core::store::{
    AnalyticsStore, ChannelStore, ChatStore, FeedStore, MetricsStore, NotificationStore, Notifier,
    QuestionStore, RealtimeStore, StoreError, StreamStore, UploadSigner, WebhookStore,
};

use crate::auth::Auth;
use crate::cache::Caches;

/// `INGEST_PUBLIC_URL` value that means "the WHIP router on this same HTTP API"
/// ([`IngestBase::SameApi`]).
pub const INGEST_VIA_API: &str = "api";

/// Where publishers send WHIP offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestBase {
    /// A fixed base URL (`INGEST_PUBLIC_URL=https://whip.example.com`): a custom domain in
    /// front of the router, or locally a node's own address.
    Fixed(String),
    /// The `whip-router` routes on the HTTP API that served this request
    /// (`INGEST_PUBLIC_URL=api`): `{scheme}://{requestContext.domainName}`. The default on
    /// AWS, where a function cannot name its own HTTP API in its environment (the API's
    /// definition names every function, so SAM reports a circular dependency); the request
    /// itself carries the API's domain, also when it came through the web distribution
    /// (CloudFront forwards to the API's own host name).
    SameApi,
}

impl IngestBase {
    /// The base for a publisher who asked through `req`: `{base}/whip/{streamId}`.
    pub fn resolve(&self, req: &Request) -> String {
        match self {
            IngestBase::Fixed(url) => url.clone(),
            IngestBase::SameApi => {
                let domain = match req.request_context() {
                    RequestContext::ApiGatewayV2(ctx) => ctx.domain_name,
                    _ => None,
                }
                .filter(|d| !d.is_empty())
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "localhost".to_owned());
                // API Gateway is HTTPS only; the local gateway says http.
                let scheme = req
                    .headers()
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .filter(|p| *p == "http" || *p == "https")
                    .unwrap_or("https");
                format!("{scheme}://{domain}")
            }
        }
    }
}

/// Public addresses handed out to clients.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// Base of WHIP endpoints: `{ingest}/whip/{streamId}`.
    pub ingest: IngestBase,
    /// RTMP application URL: `{rtmp}/{streamKey}`.
    pub rtmp: String,
    /// CDN base: `{hls}/live/{streamId}/master.m3u8`.
    pub hls: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

impl PublicUrls {
    pub fn from_env() -> PublicUrls {
        PublicUrls {
            ingest: match env_or("INGEST_PUBLIC_URL", "http://127.0.0.1:8889") {
                v if v.eq_ignore_ascii_case(INGEST_VIA_API) => IngestBase::SameApi,
                url => IngestBase::Fixed(url),
            },
            rtmp: env_or("RTMP_PUBLIC_URL", "rtmp://127.0.0.1:1935/live"),
            hls: env_or("HLS_BASE_URL", "http://127.0.0.1:3000/hls"),
        }
    }
}

pub struct App {
    pub streams: Arc<dyn StreamStore>,
    pub channels: Arc<dyn ChannelStore>,
    pub chat: Arc<dyn ChatStore>,
    /// The ordered event feed of each stream (`events-fanout` appends, `streams-events` reads).
    pub feed: Arc<dyn FeedStore>,
    pub realtime: Arc<dyn RealtimeStore>,
    pub questions: Arc<dyn QuestionStore>,
    pub metrics: Arc<dyn MetricsStore>,
    /// Analytics minute buckets and per-view rows (`events-analytics`, `streams-analytics`).
    pub analytics: Arc<dyn AnalyticsStore>,
    /// The ingest node registry and stream leases (`nodes-list`, `whip-router`).
    pub fleet: Arc<dyn FleetStore>,
    pub notifier: Arc<dyn Notifier>,
    /// Presigned uploads into the media bucket (thumbnails).
    pub uploads: Arc<dyn UploadSigner>,
    pub auth: Auth,
    pub urls: PublicUrls,
    /// Per-user chat budget (`CHAT_RATE_PER_SECOND`, `CHAT_RATE_BURST`; 1/s, burst 3).
    pub rate_limit: RateLimit,
    /// One-time pre-warm schedules of scheduled streams (EventBridge Scheduler with
    /// `PREWARM_FUNCTION_ARN`, `PREWARM_ROLE_ARN`, `PREWARM_SCHEDULE_GROUP`; otherwise off).
    pub prewarm: Arc<dyn PrewarmSchedule>,
    /// One-time reminder schedules of scheduled streams (EventBridge Scheduler with
    /// `REMINDER_FUNCTION_ARN`, `REMINDER_ROLE_ARN`, `REMINDER_SCHEDULE_GROUP`; the local
    /// gateway sets them and fires the schedules itself; otherwise off).
    pub reminders: Arc<dyn ReminderSchedule>,
    /// Where shards of a large fan-out go (`FANOUT_SHARD_FUNCTION`: asynchronous invokes of
    /// `events-fanout-shard`); `None`: every fan-out stays in-process.
    pub shards: Option<Arc<dyn ShardDispatcher>>,
    /// Connections per fan-out shard (`FANOUT_SHARD_SIZE`, default
    /// [`crate::shard::SHARD_SIZE`]).
    pub shard_size: usize,
    /// Posts in flight per fan-out process (`FANOUT_CONCURRENCY`, default
    /// [`crate::broadcast::FANOUT_CONCURRENCY`]).
    pub fanout_concurrency: usize,
    /// What this warm instance remembers between requests (`cache.rs`: stated staleness).
    pub caches: Caches,
    /// How long a reaction may wait for `ws-react` before it is refused `reaction_late`
    /// (`REACTION_MAX_WAIT_MS`, default [`crate::ws::REACTION_MAX_WAIT_MS`]).
    pub reaction_max_wait_ms: i64,
    /// Signs CloudFront grants to members-only media: the key group's `HLS_KEY_PAIR_ID`
    /// and the private key from the Secrets Manager secret `HLS_SIGNING_KEY_SECRET` (AWS)
    /// or `HLS_SIGNING_KEY` itself (the local stack); `None` when unset or unusable, and
    /// members-only media is then refused (503) rather than served unsigned.
    pub media_signer: Option<Arc<MediaSigner>>,
    /// Channels' webhooks and their cursors.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Users' notification lists.
    pub notifications: Arc<dyn NotificationStore>,
    /// Where webhook delivery runs go (`WEBHOOK_DELIVER_FUNCTION`: asynchronous invokes of
    /// `webhooks-deliver`); `None`: they run in the process that starts them.
    pub deliveries: Option<Arc<dyn crate::webhooks::DeliveryQueue>>,
    /// Where "live now" announcements go (`NOTIFY_FUNCTION`: asynchronous invokes of
    /// `notifications-send`); `None`: `webhooks-dispatch` announces in-process.
    pub notify_queue: Option<rill_aws::invoke::AsyncInvoker>,
    /// The stack's EventBridge bus (`EVENT_BUS_NAME`; unset locally): every feed event is
    /// also put there by `webhooks-dispatch`.
    pub event_bus: Option<Arc<dyn crate::webhooks::bus::EventSink>>,
    /// `WEBHOOK_ALLOW_LOCAL`, `WEBHOOK_RETRY_WINDOW_SECONDS` (checked at start).
    pub webhook_settings: crate::webhooks::WebhookSettings,
}

/// The members-only media signer, and a log line saying which (never the key itself).
async fn media_signer_from_env(sdk: &rill_aws::SdkConfig) -> Option<Arc<MediaSigner>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let key_pair_id = var("HLS_KEY_PAIR_ID")?;
    let signer = if let Some(key) = var("HLS_SIGNING_KEY") {
        MediaSigner::from_key_text(key_pair_id, &key)
    } else if let Some(secret) = var("HLS_SIGNING_KEY_SECRET") {
        match rill_aws::ecs::SignedClient::new(sdk) {
            Ok(aws) => MediaSigner::from_secret(&aws, key_pair_id, &secret).await,
            Err(e) => Err(rill_aws::media_signing::SigningKeyError::Secret(
                e.to_string(),
            )),
        }
    } else {
        tracing::debug!("members-only media signing: off (no HLS_SIGNING_KEY[_SECRET])");
        return None;
    };
    match signer {
        Ok(signer) => Some(Arc::new(signer)),
        Err(e) => {
            tracing::error!(error = %e, "members-only media signing: off");
            None
        }
    }
}

/// The shard dispatcher, and a log line saying which. Sharding only spreads work, so a
/// broken configuration switches it off with an error in the log (everything is then
/// delivered in-process) rather than failing the function.
fn shards_from_env(sdk: &rill_aws::SdkConfig) -> Option<Arc<dyn ShardDispatcher>> {
    match LambdaShards::from_lookup(sdk, |name| std::env::var(name).ok()) {
        Ok(None) => None,
        Ok(Some(shards)) => {
            tracing::debug!(function = %shards.function(), "fan-out shards: on");
            Some(Arc::new(shards))
        }
        Err(e) => {
            tracing::error!(error = %e, "fan-out shards: off (configuration)");
            None
        }
    }
}

/// The webhook delivery queue: a misnamed function is a configuration error (webhooks
/// would silently never be sent), so it fails the start.
fn deliveries_from_env(
    sdk: &rill_aws::SdkConfig,
) -> Result<Option<Arc<dyn crate::webhooks::DeliveryQueue>>, String> {
    let invoker =
        rill_aws::invoke::AsyncInvoker::from_lookup(sdk, "WEBHOOK_DELIVER_FUNCTION", |name| {
            std::env::var(name).ok()
        })?;
    Ok(invoker.map(|i| Arc::new(i) as Arc<dyn crate::webhooks::DeliveryQueue>))
}

/// The pre-warm schedules this instance writes, and a log line saying which. Pre-warming is
/// an optimisation the `ingest-prewarm` reconciler also covers, so a broken configuration
/// switches it off with an error in the log rather than failing every stream request.
fn prewarm_from_env(sdk: &rill_aws::SdkConfig) -> Arc<dyn PrewarmSchedule> {
    match EventBridgeSchedules::from_lookup(sdk, |name| std::env::var(name).ok()) {
        Ok(None) => {
            tracing::info!(
                "pre-warm schedules: off (PREWARM_FUNCTION_ARN, PREWARM_ROLE_ARN and \
                 PREWARM_SCHEDULE_GROUP unset)"
            );
            Arc::new(NoPrewarm)
        }
        Ok(Some(schedules)) => {
            let target = schedules.target();
            tracing::info!(group = %target.group, function = %target.function_arn,
                "pre-warm schedules: on");
            Arc::new(schedules)
        }
        Err(e) => {
            tracing::error!(error = %e, "pre-warm schedules: off (configuration)");
            Arc::new(NoPrewarm)
        }
    }
}

/// The reminder schedules this instance writes. A broken configuration switches them off
/// with an error in the log (as pre-warming): a stream request never fails for a reminder.
fn reminders_from_env(sdk: &rill_aws::SdkConfig) -> Arc<dyn ReminderSchedule> {
    match EventBridgeReminders::from_lookup(sdk, |name| std::env::var(name).ok()) {
        Ok(None) => {
            tracing::info!(
                "reminder schedules: off (REMINDER_FUNCTION_ARN, REMINDER_ROLE_ARN and \
                 REMINDER_SCHEDULE_GROUP unset)"
            );
            Arc::new(NoReminders)
        }
        Ok(Some(schedules)) => {
            let target = schedules.target();
            tracing::info!(group = %target.group, function = %target.function_arn,
                "reminder schedules: on");
            Arc::new(schedules)
        }
        Err(e) => {
            tracing::error!(error = %e, "reminder schedules: off (configuration)");
            Arc::new(NoReminders)
        }
    }
}

fn rate_limit_from_env() -> RateLimit {
    let read = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(default)
    };
    let d = RateLimit::default();
    RateLimit {
        per_second: read("CHAT_RATE_PER_SECOND", d.per_second),
        burst: read("CHAT_RATE_BURST", d.burst),
    }
}

fn reaction_max_wait_from_env() -> i64 {
    std::env::var("REACTION_MAX_WAIT_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(crate::ws::REACTION_MAX_WAIT_MS)
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Reads the environment and builds the AWS clients once (building them makes no
    /// network call, so a function that does not use one pays nothing at init). Fails, and
    /// so fails the function's init, when the configuration has no region.
    pub async fn from_env() -> Result<App, String> {
        let settings = AwsSettings::from_env();
        let sdk = rill_aws::sdk_config(&settings).await;
        let store = Arc::new(DynamoStore::new(
            rill_aws::dynamodb_client(&sdk),
            settings.table_name,
        ));
        let notifier = Arc::new(ManagementApi::new(
            &sdk,
            &ManagementApi::endpoint_from_env(),
        )?);
        let uploads = Arc::new(S3Uploads::new(
            rill_aws::s3_client(&sdk),
            settings.bucket_name,
        ));
        Ok(App {
            streams: store.clone(),
            channels: store.clone(),
            chat: store.clone(),
            feed: store.clone(),
            webhooks: store.clone(),
            notifications: store.clone(),
            realtime: store.clone(),
            questions: store.clone(),
            metrics: store.clone(),
            analytics: store.clone(),
            fleet: store,
            notifier,
            uploads,
            auth: Auth::from_env(),
            urls: PublicUrls::from_env(),
            rate_limit: rate_limit_from_env(),
            prewarm: prewarm_from_env(&sdk),
            reminders: reminders_from_env(&sdk),
            shards: shards_from_env(&sdk),
            shard_size: crate::shard::shard_size_from_lookup(|name| std::env::var(name).ok()),
            fanout_concurrency: crate::broadcast::concurrency_from_lookup(|name| {
                std::env::var(name).ok()
            }),
            caches: Caches::default(),
            reaction_max_wait_ms: reaction_max_wait_from_env(),
            media_signer: media_signer_from_env(&sdk).await,
            deliveries: deliveries_from_env(&sdk)?,
            notify_queue: rill_aws::invoke::AsyncInvoker::from_lookup(
                &sdk,
                "NOTIFY_FUNCTION",
                |name| std::env::var(name).ok(),
            )?,
            event_bus: rill_aws::event_bus::EventBridgeBus::from_lookup(&sdk, |name| {
                std::env::var(name).ok()
            })?
            .map(|bus| Arc::new(bus) as Arc<dyn crate::webhooks::bus::EventSink>),
            webhook_settings: crate::webhooks::WebhookSettings::from_lookup(|name| {
                std::env::var(name).ok()
            })?,
        })
    }
}

impl App {
    /// The stream, at most [`crate::cache::SHORT`] old.
    pub async fn stream_cached(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        if let Some(s) = self.caches.streams.get(&id.to_owned()) {
            return Ok(Some(s));
        }
        let stream = self.streams.get_stream(id).await?;
        if let Some(s) = &stream {
            self.caches.streams.put(id.to_owned(), s.clone());
        }
        Ok(stream)
    }

    /// A user's ban, moderator and membership state, at most [`crate::cache::SHORT`] old.
    pub async fn standing_cached(
        &self,
        stream: &Stream,
        user_id: &str,
    ) -> Result<Standing, StoreError> {
        let key = (stream.id.clone(), user_id.to_owned());
        if let Some(s) = self.caches.standings.get(&key) {
            return Ok(s);
        }
        let standing = self.realtime.standing(stream, user_id).await?;
        self.caches.standings.put(key, standing);
        Ok(standing)
    }
}
