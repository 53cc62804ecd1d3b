//! rill-ingest: the long-running media node of Rill.
//!
//! Publishers arrive over RTMP ([`rtmp`]) or WHIP (WebRTC, [`whip`]); both present the
//! same publish contract ([`publish`]: stream key, request, refusal, sink, authoriser) and
//! their media becomes [`media::MediaEvent`]s, one stream of events per publish. A
//! per-stream task decodes once, transcodes to the adaptive ladder ([`transcode`]),
//! packages fMP4/CMAF segments and HLS playlists ([`package`]) and uploads them through the
//! media bucket port ([`upload`]).
//!
//! Module contracts are the types in [`media`]: ingest protocols produce `MediaEvent`s, the
//! transcoder consumes them and produces `EncodedPacket`s per rendition, the packager turns
//! those into `Segment`s and playlists. Whatever needs to look inside H.264 or AAC uses the
//! one set of parsers in [`bitstream`].
//!
//! Composition: [`config`] reads and validates the environment once; [`run()`] (the
//! composition root, in `run.rs`) plugs the AWS adapters into the node's `rill-core` ports
//! ([`node::Ports`]), binds RTMP, HTTP and WebRTC UDP, serves and shuts down gracefully.
//! `main.rs` only parses the command line, sets up logging and waits for a signal.

pub mod bitstream;
pub mod config;
pub mod fleet;
pub mod governor;
pub mod http;
pub mod media;
pub mod node;
pub mod package;
pub mod pipeline;
pub mod publish;
pub mod rtmp;
mod run;
pub mod sweep;
pub mod transcode;
pub mod upload;
pub mod whip;

pub use config::{Config, ConfigError};
pub use run::{Addresses, Ingest, RunError, SHUTDOWN_GRACE, aws_ports, run};
