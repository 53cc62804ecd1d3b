//! rill-api: the REST handlers of Rill and one thin Lambda binary per endpoint.
//!
//! Every binary under `src/bin/` is named after its function in infra/template.yaml and
//! does one thing: call its entry in [`functions`], which starts the runtime
//! ([`runtime::run`] for HTTP routes): sets up tracing, reads the configuration from the
//! environment, builds the AWS clients once and serves API Gateway HTTP API events with
//! `lambda_http`. Each binary's own crate is that one call, so building 40 of them costs
//! 40 links, not 40 compilations of the runtime (see [`runtime`]).
//!
//! Socket routes are in [`ws`], the table-stream fan-out in [`fanout`]; both deliver through
//! [`broadcast`]. The scheduled `ingest-prewarm` function is [`prewarm`].
//!
//! Invariants:
//! - handlers check input and permissions before they write, so a refused request changes
//!   nothing;
//! - every failure is an [`error::ApiError`], turned into `{"error":{"code","message"}}`
//!   with its status code in exactly one place ([`error::ApiError::into_response`]);
//! - a 5xx never carries internals (they go to the log);
//! - a stream key appears only in the responses to create and rotate, to the owner.

pub mod app;
pub mod auth;
pub mod broadcast;
pub mod cache;
pub mod error;
pub mod fanout;
pub mod functions;
pub mod handlers;
pub mod presence;
pub mod prewarm;
pub mod request;
pub mod runtime;
pub mod shard;
pub mod ws;

pub use app::App;
pub use error::ApiError;
