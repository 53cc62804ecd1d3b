//! One `main` per Lambda function: `src/bin/<function>.rs` is `fn main() { functions::<function>() }`.
//!
//! Everything a function runs is compiled here, in the library, once; a binary's own crate
//! holds no generic code and compiles in about a second (see [`crate::runtime`] for why
//! that matters to `sam build`). A function's linked binary keeps only what its entry
//! reaches: the linker drops the other functions' handlers.

use std::sync::Arc;

use crate::runtime::{self, BoxFuture};

/// `pub fn $name() -> Result<(), lambda_runtime::Error>` for each function: build the Tokio
/// runtime, then serve the function's events with its handler.
macro_rules! functions {
    ($($kind:ident $name:ident => $handler:path;)*) => {
        $(functions!(@one $kind $name $handler);)*
    };
    (@one http $name:ident $handler:path) => {
        #[doc = concat!("`main` of an HTTP API function: `", stringify!($name), "`.")]
        pub fn $name() -> Result<(), lambda_runtime::Error> {
            runtime::block_on(Box::pin(runtime::run(Box::new(|app, req| -> BoxFuture<_> {
                Box::pin($handler(app, req))
            }))))
        }
    };
    (@one ws $name:ident $handler:path) => {
        #[doc = concat!("`main` of a WebSocket route's function: `", stringify!($name), "`.")]
        pub fn $name() -> Result<(), lambda_runtime::Error> {
            runtime::block_on(Box::pin(runtime::run_ws(Box::new(|app, event| -> BoxFuture<_> {
                Box::pin($handler(app, event))
            }))))
        }
    };
    (@one stream $name:ident $handler:path) => {
        #[doc = concat!("`main` of a table-stream function: `", stringify!($name), "`.")]
        pub fn $name() -> Result<(), lambda_runtime::Error> {
            runtime::block_on(Box::pin(runtime::run_stream(Box::new(|app, event| -> BoxFuture<_> {
                Box::pin($handler(app, event))
            }))))
        }
    };
}

functions! {
    http api_docs => crate::handlers::docs::openapi;
    http bans_add => crate::handlers::moderation::ban_user;
    http bans_remove => crate::handlers::moderation::unban_user;
    http chat_delete => crate::handlers::chat::delete;
    http chat_list => crate::handlers::chat::list;
    http chat_pin => crate::handlers::chat::pin;
    http chat_send => crate::handlers::chat::send;
    http channels_analytics => crate::handlers::analytics::channel;
    http channels_create => crate::handlers::channels::create;
    http channels_get => crate::handlers::channels::get;
    http me_notifications_list => crate::handlers::me::notifications;
    http me_notifications_read => crate::handlers::me::read;
    http members_list => crate::handlers::channels::members;
    http members_remove => crate::handlers::channels::remove_member;
    http members_set => crate::handlers::channels::set_member;
    http moderators_add => crate::handlers::moderation::add_moderator;
    http moderators_list => crate::handlers::moderation::list_moderators;
    http moderators_remove => crate::handlers::moderation::remove_moderator;
    http nodes_list => crate::handlers::nodes::list;
    http questions_answer => crate::handlers::questions::answer;
    http questions_list => crate::handlers::questions::list;
    http questions_upvote => crate::handlers::questions::upvote;
    http reactions_send => crate::handlers::reactions::send;
    http streams_cancel => crate::handlers::streams::cancel;
    http streams_create => crate::handlers::streams::create;
    http streams_end => crate::handlers::streams::end;
    http streams_events => crate::handlers::events::list;
    http streams_get => crate::handlers::streams::get;
    http streams_hls => crate::handlers::streams::hls;
    http streams_list => crate::handlers::streams::list;
    http streams_metrics => crate::handlers::metrics::list;
    http streams_analytics => crate::handlers::analytics::stream;
    http streams_rotate_key => crate::handlers::streams::rotate_key;
    http streams_start => crate::handlers::streams::start;
    http streams_thumbnail => crate::handlers::streams::thumbnail_upload;
    http streams_update => crate::handlers::streams::update;
    http streams_viewers => crate::handlers::streams::viewers;
    http webhooks_create => crate::handlers::webhooks::create;
    http webhooks_delete => crate::handlers::webhooks::delete;
    http webhooks_list => crate::handlers::webhooks::list;
    http webhooks_update => crate::handlers::webhooks::update;
    ws ws_chat => crate::ws::chat;
    ws ws_connect => crate::ws::connect;
    ws ws_default => crate::ws::default;
    ws ws_disconnect => crate::ws::disconnect;
    ws ws_heartbeat => crate::ws::heartbeat;
    ws ws_ping => crate::ws::ping;
    ws ws_question => crate::ws::question;
    ws ws_react => crate::ws::react;
    stream events_fanout => crate::fanout::handle;
    stream events_presence => crate::presence::handle;
    stream webhooks_dispatch => crate::webhooks::dispatch;
}

/// `main` of `events-fanout-shard`: one shard of a large fan-out (see [`crate::shard`]),
/// invoked asynchronously by `events-fanout` and the socket functions.
pub fn events_fanout_shard() -> Result<(), lambda_runtime::Error> {
    runtime::block_on(Box::pin(runtime::run_json(Box::new(
        |app, payload| -> BoxFuture<_> {
            Box::pin(async move {
                let shard = serde_json::from_value(payload)
                    .map_err(|e| crate::ApiError::Internal(format!("not a shard: {e}")))?;
                let report = crate::shard::handle(app, shard).await?;
                serde_json::to_value(report).map_err(|e| crate::ApiError::Internal(e.to_string()))
            })
        },
    ))))
}

/// `main` of `ws-authorize`: the WebSocket API's `$connect` authorizer (see
/// [`crate::ws_authorizer`]). A failure fails the invocation (API Gateway answers 500).
pub fn ws_authorize() -> Result<(), lambda_runtime::Error> {
    runtime::block_on(Box::pin(runtime::run_json(Box::new(
        |app, payload| -> BoxFuture<_> { Box::pin(crate::ws_authorizer::authorize(app, payload)) },
    ))))
}

/// `main` of `webhooks-deliver`: one delivery run (see [`crate::webhooks::deliver`]),
/// invoked asynchronously by `webhooks-dispatch` and by re-enabling a webhook.
pub fn webhooks_deliver() -> Result<(), lambda_runtime::Error> {
    runtime::block_on(Box::pin(runtime::run_json(Box::new(
        |app, payload| -> BoxFuture<_> {
            Box::pin(async move {
                let job: crate::webhooks::Job = serde_json::from_value(payload)
                    .map_err(|e| crate::ApiError::Internal(format!("not a delivery job: {e}")))?;
                crate::webhooks::deliver::run(&app, &job).await
            })
        },
    ))))
}

/// `main` of `notifications-send`: one reminder or one "live now" announcement (see
/// [`crate::notifications::send`]), invoked by a reminder's one-time schedule or
/// asynchronously by `webhooks-dispatch`.
pub fn notifications_send() -> Result<(), lambda_runtime::Error> {
    runtime::block_on(Box::pin(runtime::run_json(Box::new(
        |app, payload| -> BoxFuture<_> {
            Box::pin(async move {
                let job: crate::notifications::Job =
                    serde_json::from_value(payload).map_err(|e| {
                        crate::ApiError::Internal(format!("not a notifications job: {e}"))
                    })?;
                crate::notifications::send(&app, &job).await
            })
        },
    ))))
}

/// `main` of `whip-router`: WHIP offers proxied to an ingest node with capacity.
pub fn whip_router() -> Result<(), lambda_runtime::Error> {
    let router = Arc::new(crate::handlers::whip::WhipRouter::new()?);
    runtime::block_on(Box::pin(runtime::run(Box::new(
        move |app, req| -> BoxFuture<_> {
            let router = router.clone();
            Box::pin(async move { router.handle(app, req).await })
        },
    ))))
}

/// `main` of `ingest-prewarm` (EventBridge Scheduler events; see [`crate::prewarm`]).
pub fn ingest_prewarm() -> Result<(), lambda_runtime::Error> {
    runtime::block_on(Box::pin(crate::prewarm::run()))
}
