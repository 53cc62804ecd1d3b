//! rill-api: every Lambda function of Rill (REST endpoints, WebSocket routes, the
//! table-stream consumers, the shard worker and the scheduled pre-warm) and one thin
//! binary per function.
//!
//! Every binary under `src/bin/` is named after its function in infra/template.yaml and
//! does one thing: call its entry in [`functions`], which starts a runner of [`runtime`]
//! ([`runtime::run`] for HTTP routes, [`runtime::run_ws`] for socket routes,
//! [`runtime::run_stream`] for table-stream batches, [`runtime::run_json`] for direct
//! invocations; `ingest-prewarm` has its own in [`prewarm`]): it sets up tracing, reads
//! the configuration from the environment into an [`App`] (the AWS clients, built once per
//! instance) and serves the function's events.
//! Each binary's own crate is that one call, so building every function costs one link
//! each, not one compilation of the runtime each.
//!
//! Modules:
//! - [`handlers`]: one async function per REST endpoint, and the WHIP router; [`request`]
//!   reads requests and writes responses the same way for all of them; [`auth`] says who
//!   is calling; [`error`] maps every failure to its response.
//! - [`ws`]: the WebSocket routes.
//! - [`fanout`] (`events-fanout`) and [`presence`] (`events-presence`): the table's change
//!   stream turned into `stream:*` events; [`shard`] splits large audiences across
//!   `events-fanout-shard` invocations. Socket routes and fan-outs deliver through
//!   [`broadcast`].
//! - [`cache`]: what a warm instance may remember, and for how long.
//! - [`prewarm`]: the scheduled `ingest-prewarm` reconciler.
//!
//! Invariants:
//! - handlers check input and permissions before they write, so a refused request changes
//!   nothing;
//! - every failure is an [`error::ApiError`], turned into `{"error":{"code","message"}}`
//!   with its status code in exactly one place ([`error::ApiError::into_response`]);
//! - a 5xx never carries internals (they go to the log);
//! - a stream key appears only in the responses to create and rotate, to the owner.

pub mod analytics;
pub mod app;
pub mod auth;
pub mod broadcast;
pub mod cache;
pub mod error;
pub mod fanout;
pub mod functions;
pub mod handlers;
pub mod notifications;
pub mod presence;
pub mod prewarm;
pub mod request;
pub mod runtime;
pub mod shard;
pub mod uap;
pub mod webhooks;
pub mod ws;
pub mod ws_authorizer;

pub use app::App;
pub use error::ApiError;
