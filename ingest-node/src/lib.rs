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

pub mod bitstream;
pub mod http;
pub mod media;
pub mod node;
pub mod package;
pub mod pipeline;
pub mod publish;
pub mod rtmp;
pub mod transcode;
pub mod upload;
pub mod whip;
