//! The node's configuration: every environment variable is read here, once, when the
//! process starts ([`Config::from_env`]), and nowhere else.
//!
//! Invariants:
//! - a variable that is set but does not parse (or is out of range) is an error naming the
//!   variable and what it accepts; the node does not start. Nothing falls back to a default
//!   silently;
//! - an empty value counts as unset (shells and compose files produce `VAR=` easily);
//! - nothing here is a secret (credentials stay with the AWS SDK's own chain), so
//!   [`Config::log`] can log every value used.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rill_aws::AwsSettings;

use crate::fleet::FleetConfig;
use crate::governor::{self, GovernorConfig};
use crate::node::NodeConfig;

/// `rill-ingest --help`.
pub const USAGE: &str = "\
rill-ingest: Rill's ingest node (RTMP and WHIP in, HLS to the media bucket out)

Usage: rill-ingest [--help | --version]

Settings (environment variable, default):
  RTMP_ADDR                 127.0.0.1:1935   RTMP listener (ip:port; port 0 = any free port)
  INGEST_HTTP_ADDR          127.0.0.1:8889   HTTP: WHIP /whip/{streamId}, /metrics, /healthz
  WEBRTC_UDP_ADDR           127.0.0.1:8890   WebRTC media (UDP)
  WEBRTC_ADVERTISE_IP       unset            public IP for ICE candidates (needed when
                                             WEBRTC_UDP_ADDR is a wildcard address)
  SEGMENT_MS                1000             segment length in ms, 500..=6000
  RECONNECT_WINDOW_SECONDS  30               how long a dropped publisher may take to return
  SAMPLE_SECONDS            5                quality sample interval, at least 1
  UPLOAD_BACKLOG_MB         64               per stream, media waiting for the bucket at most
                                             (1..=1024); past it the oldest unsent segments
                                             are dropped and listed as #EXT-X-GAP
  HLS_BASE_URL              http://127.0.0.1:3000/hls   CDN base of the media bucket
  PASSTHROUGH               true             forward RTMP sources that fit the top rung
                                             (true/false, 1/0, yes/no, on/off)
  X264_PARAMS               unset            extra x264 parameters, key=value:key=value
                                             (unset: none for RTMP, bframes=0:rc-lookahead=0
                                             for WebRTC)
  NODE_ID                   generated        this node's id in the registry (default: the
                                             ECS task id on ECS, else node-<ulid>)
  NODE_CAPACITY             from the cores   streams this node takes (default: cores x 0.85
                                             / 1.4 CPU per 1080p ladder, at least 1)
  NODE_PRIVATE_URL          from the address HTTP base the WHIP router reaches this node at
  DRAIN_SECONDS             0                on SIGTERM, how long current streams may go on
                                             before they are finalised (0..=115; ECS: 100)
  TABLE_NAME                rill             DynamoDB table
  BUCKET_NAME               rill-media       media bucket
  AWS_ENDPOINT_URL          unset            moto or LocalStack locally; unset on AWS
  AWS_ENDPOINT_URL_DYNAMODB unset            DynamoDB only (DynamoDB Local locally)
  AWS_REGION                us-east-1        (or AWS_DEFAULT_REGION)

A value that does not parse stops the node with a message naming the variable. Once
listening it prints one line to stdout: rill-ingest listening on rtmp://<addr> http://<addr>
";

/// Everything the node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// UDP address of the WebRTC (WHIP) media engine.
    pub webrtc_udp_addr: SocketAddr,
    /// Public IP to advertise in ICE candidates when binding a wildcard address.
    pub webrtc_advertise_ip: Option<IpAddr>,
    /// Stream-level settings the node hands to every pipeline.
    pub node: NodeConfig,
    /// Registry identity, capacity and drain.
    pub fleet: FleetConfig,
    /// ECS task metadata and agent endpoints (`ECS_CONTAINER_METADATA_URI_V4`,
    /// `ECS_AGENT_URI`), set by ECS itself; unset elsewhere.
    pub ecs: rill_aws::ecs::EcsEnv,
    pub aws: AwsSettings,
}

/// A variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    /// What the variable accepts.
    pub expected: String,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run,
    Help,
    Version,
    /// An argument the binary does not take.
    Unknown(String),
}

impl Invocation {
    /// `args` without the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Invocation {
        match args.into_iter().next().as_deref() {
            None => Invocation::Run,
            Some("-h" | "--help") => Invocation::Help,
            Some("-V" | "--version") => Invocation::Version,
            Some(other) => Invocation::Unknown(other.to_owned()),
        }
    }
}

/// `rill-ingest <version>`, what `--version` prints.
pub fn version_line() -> String {
    format!("rill-ingest {}", env!("CARGO_PKG_VERSION"))
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = Vars(&lookup);
        let node = NodeConfig {
            segment_ms: var.parse_in("SEGMENT_MS", 1000, 500, Some(6000))?,
            reconnect_window: Duration::from_secs(var.parse("RECONNECT_WINDOW_SECONDS", 30)?),
            sample_every: Duration::from_secs(var.parse_in("SAMPLE_SECONDS", 5, 1, None)?),
            upload_backlog_bytes: var.parse_in("UPLOAD_BACKLOG_MB", 64usize, 1, Some(1024))? << 20,
            hls_base_url: var.url("HLS_BASE_URL", "http://127.0.0.1:3000/hls")?,
            passthrough: var.bool("PASSTHROUGH", true)?,
            x264_params: var.x264_params("X264_PARAMS")?,
            governor: var.governor("GOVERNOR")?,
            fault_hooks: var.bool("RILL_FAULT_HOOKS", false)?,
        };
        Ok(Config {
            rtmp_addr: var.addr("RTMP_ADDR", "127.0.0.1:1935")?,
            http_addr: var.addr("INGEST_HTTP_ADDR", "127.0.0.1:8889")?,
            webrtc_udp_addr: var.addr("WEBRTC_UDP_ADDR", "127.0.0.1:8890")?,
            webrtc_advertise_ip: var.optional("WEBRTC_ADVERTISE_IP", "an IP address")?,
            node,
            fleet: FleetConfig {
                node_id: var.node_id("NODE_ID")?,
                capacity: match var.get("NODE_CAPACITY") {
                    None => None,
                    Some(_) => Some(var.parse_in("NODE_CAPACITY", 1u32, 1, None)?),
                },
                private_url: var
                    .get("NODE_PRIVATE_URL")
                    .map(|_| var.url("NODE_PRIVATE_URL", ""))
                    .transpose()?,
                drain: Duration::from_secs(var.parse_in("DRAIN_SECONDS", 0, 0, Some(115))?),
            },
            ecs: rill_aws::ecs::EcsEnv::from_lookup(&lookup),
            aws: AwsSettings::from_lookup(&lookup),
        })
    }

    /// Logs every value in use (none is a secret).
    pub fn log(&self) {
        let n = &self.node;
        tracing::info!(
            rtmp_addr = %self.rtmp_addr,
            http_addr = %self.http_addr,
            webrtc_udp_addr = %self.webrtc_udp_addr,
            webrtc_advertise_ip = ?self.webrtc_advertise_ip,
            segment_ms = n.segment_ms,
            reconnect_window_s = n.reconnect_window.as_secs(),
            sample_s = n.sample_every.as_secs(),
            upload_backlog_mb = n.upload_backlog_bytes >> 20,
            hls_base_url = %n.hls_base_url,
            passthrough = n.passthrough,
            x264_params = ?n.x264_params,
            governor = ?n.governor.fixed.map_or("on".to_owned(), |l| format!("fixed at level {l}")),
            fault_hooks = n.fault_hooks,
            node_id = ?self.fleet.node_id,
            node_capacity = ?self.fleet.capacity,
            node_private_url = ?self.fleet.private_url,
            drain_s = self.fleet.drain.as_secs(),
            ecs_metadata_uri = ?self.ecs.metadata_uri,
            table = %self.aws.table_name,
            bucket = %self.aws.bucket_name,
            aws_endpoint_url = ?self.aws.endpoint_url,
            region = %self.aws.region,
            "configuration"
        );
    }
}

/// Typed reads of the variables; set-but-empty counts as unset.
struct Vars<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn error(name: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            name,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| Self::error(name, &v, "not a whole number")),
        }
    }

    /// A number of at least `min` (and at most `max`): out of range is an error rather
    /// than a silent clamp, so the node never runs with a value nobody asked for.
    fn parse_in<T>(
        &self,
        name: &'static str,
        default: T,
        min: T,
        max: Option<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = self.parse(name, default)?;
        if v >= min && max.is_none_or(|max| v <= max) {
            return Ok(v);
        }
        let value = self.get(name).unwrap_or_default();
        Err(Self::error(
            name,
            &value,
            match max {
                Some(max) => format!("between {min} and {max}"),
                None => format!("at least {min}"),
            },
        ))
    }

    fn optional<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| Self::error(name, &v, expected))
            })
            .transpose()
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value
            .trim()
            .parse()
            .map_err(|_| Self::error(name, &value, "an ip:port address, e.g. 0.0.0.0:1935"))
    }

    fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Self::error(name, &v, "true/false, 1/0, yes/no or on/off")),
        }
    }

    /// An http(s) URL without its trailing slash (object paths are appended to it).
    fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        let trimmed = value.trim().trim_end_matches('/');
        let host = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"));
        match host {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(trimmed.to_owned()),
            _ => Err(Self::error(name, &value, "an http:// or https:// URL")),
        }
    }

    /// A node id: 1-64 characters of `[A-Za-z0-9_-]` (it becomes part of a table key).
    fn node_id(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let id = v.trim();
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Some(id.to_owned()))
        } else {
            Err(Self::error(
                name,
                &v,
                "1-64 characters of A-Z, a-z, 0-9, - and _",
            ))
        }
    }

    /// `on` (default), `off` (= level 0 always) or a fixed level 0-5.
    fn governor(&self, name: &'static str) -> Result<GovernorConfig, ConfigError> {
        let fixed = match self.get(name).as_deref().map(str::trim) {
            None | Some("on") => None,
            Some("off") => Some(0),
            Some(level) => match level.parse::<u8>() {
                Ok(l) if l <= governor::MAX_LEVEL => Some(l),
                _ => {
                    return Err(Self::error(
                        name,
                        level,
                        format!("on, off or a level 0-{}", governor::MAX_LEVEL),
                    ));
                }
            },
        };
        Ok(GovernorConfig {
            fixed,
            ..GovernorConfig::default()
        })
    }

    /// `key=value` pairs separated by `:`, as x264 (and FFmpeg's `x264-params`) read them;
    /// caught here because a malformed list would otherwise fail every stream's encoder.
    fn x264_params(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let params = v.trim();
        let well_formed = params.split(':').all(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| !key.is_empty() && !value.is_empty())
        });
        if well_formed {
            Ok(Some(params.to_owned()))
        } else {
            Err(Self::error(name, &v, "key=value pairs separated by ':'"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governor_is_on_by_default_and_can_be_off_or_fixed() {
        assert_eq!(config(&[]).unwrap().node.governor.fixed, None);
        assert_eq!(
            config(&[("GOVERNOR", "on")]).unwrap().node.governor.fixed,
            None
        );
        assert_eq!(
            config(&[("GOVERNOR", "off")]).unwrap().node.governor.fixed,
            Some(0)
        );
        assert_eq!(
            config(&[("GOVERNOR", "3")]).unwrap().node.governor.fixed,
            Some(3)
        );
        assert!(!config(&[]).unwrap().node.fault_hooks);
        assert!(
            config(&[("RILL_FAULT_HOOKS", "1")])
                .unwrap()
                .node
                .fault_hooks
        );
    }

    #[test]
    fn an_unknown_governor_setting_is_refused_naming_it() {
        for bad in ["fast", "6"] {
            let e = config(&[("GOVERNOR", bad)]).expect_err("refused");
            assert!(e.to_string().contains("GOVERNOR"), "{e}");
        }
    }

    fn config(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn error_for(env: &[(&str, &str)]) -> ConfigError {
        config(env).expect_err("the value is refused")
    }

    #[test]
    fn defaults_are_the_local_stack() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.rtmp_addr, "127.0.0.1:1935".parse().unwrap());
        assert_eq!(c.http_addr, "127.0.0.1:8889".parse().unwrap());
        assert_eq!(c.webrtc_udp_addr, "127.0.0.1:8890".parse().unwrap());
        assert_eq!(c.webrtc_advertise_ip, None);
        assert_eq!(c.node.segment_ms, 1000);
        assert_eq!(c.node.reconnect_window, Duration::from_secs(30));
        assert_eq!(c.node.sample_every, Duration::from_secs(5));
        assert_eq!(c.node.upload_backlog_bytes, 64 << 20);
        assert_eq!(c.node.hls_base_url, "http://127.0.0.1:3000/hls");
        assert!(c.node.passthrough);
        assert_eq!(c.node.x264_params, None);
        assert_eq!(c.aws.table_name, "rill");
        assert_eq!(c.aws.bucket_name, "rill-media");
    }

    #[test]
    fn set_values_win_over_defaults() {
        let c = config(&[
            ("RTMP_ADDR", "0.0.0.0:0"),
            ("INGEST_HTTP_ADDR", "127.0.0.1:0"),
            ("WEBRTC_UDP_ADDR", "0.0.0.0:9000"),
            ("WEBRTC_ADVERTISE_IP", "203.0.113.7"),
            ("SEGMENT_MS", "2000"),
            ("RECONNECT_WINDOW_SECONDS", "6"),
            ("SAMPLE_SECONDS", "1"),
            ("HLS_BASE_URL", "https://cdn.example.com/media/"),
            ("PASSTHROUGH", "off"),
            ("X264_PARAMS", "bframes=0:rc-lookahead=0"),
            ("BUCKET_NAME", "media-test"),
        ])
        .expect("valid");
        assert_eq!(c.rtmp_addr, "0.0.0.0:0".parse().unwrap());
        assert_eq!(c.http_addr.port(), 0);
        assert_eq!(c.webrtc_udp_addr.port(), 9000);
        assert_eq!(c.webrtc_advertise_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(c.node.segment_ms, 2000);
        assert_eq!(c.node.reconnect_window, Duration::from_secs(6));
        assert_eq!(c.node.sample_every, Duration::from_secs(1));
        assert_eq!(c.node.hls_base_url, "https://cdn.example.com/media");
        assert!(!c.node.passthrough);
        assert_eq!(
            c.node.x264_params.as_deref(),
            Some("bframes=0:rc-lookahead=0")
        );
        assert_eq!(c.aws.bucket_name, "media-test");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[
            ("SEGMENT_MS", ""),
            ("X264_PARAMS", " "),
            ("PASSTHROUGH", ""),
        ])
        .expect("valid");
        assert_eq!(c.node.segment_ms, 1000);
        assert_eq!(c.node.x264_params, None);
        assert!(c.node.passthrough);
    }

    #[test]
    fn an_unparsable_value_is_an_error_naming_the_variable() {
        for (name, value) in [
            ("RTMP_ADDR", "1935"),
            ("INGEST_HTTP_ADDR", "localhost"),
            ("WEBRTC_UDP_ADDR", "127.0.0.1:99999"),
            ("WEBRTC_ADVERTISE_IP", "example.com"),
            ("SEGMENT_MS", "1s"),
            ("RECONNECT_WINDOW_SECONDS", "-1"),
            ("SAMPLE_SECONDS", "five"),
            ("HLS_BASE_URL", "cdn.example.com/hls"),
            ("PASSTHROUGH", "maybe"),
            ("X264_PARAMS", "bframes"),
        ] {
            let e = error_for(&[(name, value)]);
            assert_eq!(e.name, name, "{e}");
            assert_eq!(e.value, value);
            let message = e.to_string();
            assert!(message.starts_with(&format!("{name}=")), "{message}");
        }
    }

    #[test]
    fn out_of_range_numbers_are_errors_not_clamped() {
        let e = error_for(&[("SEGMENT_MS", "100")]);
        assert_eq!(e.name, "SEGMENT_MS");
        assert!(
            e.expected.contains("500") && e.expected.contains("6000"),
            "{e}"
        );
        assert_eq!(error_for(&[("SEGMENT_MS", "6001")]).name, "SEGMENT_MS");
        let e = error_for(&[("SAMPLE_SECONDS", "0")]);
        assert_eq!(e.expected, "at least 1");
        assert!(config(&[("SEGMENT_MS", "500")]).is_ok());
        assert!(config(&[("SEGMENT_MS", "6000")]).is_ok());
        assert!(config(&[("RECONNECT_WINDOW_SECONDS", "0")]).is_ok());
    }

    #[test]
    fn version_and_help_flags_are_recognised() {
        let parse = |args: &[&str]| Invocation::parse(args.iter().map(|a| (*a).to_owned()));
        assert_eq!(parse(&[]), Invocation::Run);
        assert_eq!(parse(&["--version"]), Invocation::Version);
        assert_eq!(parse(&["-V"]), Invocation::Version);
        assert_eq!(parse(&["--help"]), Invocation::Help);
        assert_eq!(parse(&["--bogus"]), Invocation::Unknown("--bogus".into()));
        assert_eq!(
            version_line(),
            format!("rill-ingest {}", env!("CARGO_PKG_VERSION"))
        );
    }
}
