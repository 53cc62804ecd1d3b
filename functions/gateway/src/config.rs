//! Command line and environment. A flag wins over its variable, which wins over the default.

use std::path::PathBuf;
use std::time::Duration;

use crate::websocket::WebSocketSettings;

pub const USAGE: &str = "\
rill-gateway: local API Gateway (HTTP API + WebSocket API + @connections) and Lambda
(including DynamoDB stream event source mappings) for Rill's function binaries

Usage: rill-gateway [options]

Options (flag / environment variable / default):
  --port <n>               PORT                     3000 (0 = any free port)
  --template <file>        GATEWAY_TEMPLATE         infra/template.yaml
  --functions-dir <dir>    GATEWAY_FUNCTIONS_DIR    directory of this executable
  --static-dir <dir>       STATIC_DIR               web/dist
  --max-instances <n>      GATEWAY_MAX_INSTANCES    4 (per function)
  --init-resources         GATEWAY_INIT_RESOURCES   off (1/true: create TABLE_NAME and BUCKET_NAME)
  --ws-idle-timeout <s>    GATEWAY_WS_IDLE_TIMEOUT  600 (close a WebSocket after this long
                                                    without a data frame from the client)
  --ws-max-age <s>         GATEWAY_WS_MAX_AGE       7200 (close WebSockets older than this)
  --no-stream-poller       GATEWAY_STREAM_POLLER    on (0/false: do not feed DynamoDB stream
                                                    events to functions)
  -h, --help

Serves on 127.0.0.1 only:
  /api/...                  HTTP API routes of the template (payload v2.0)
  GET /ws?...               WebSocket API: $connect / $disconnect / $default / action routes
  /@connections/{id}        Management API (POST, GET, DELETE) for aws-sdk-apigatewaymanagement;
                            functions get WS_MANAGEMENT_ENDPOINT=http://127.0.0.1:<port> unless
                            the gateway's environment sets it (likewise
                            HLS_BASE_URL=http://127.0.0.1:<port>/hls)
  POST /2015-03-31/functions/{name}/invocations
                            Lambda's Invoke API for the template's functions (Event: 202, run
                            in the background; RequestResponse: the result); functions get
                            AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:<port> unless set
  /schedules/{name}         EventBridge Scheduler's one-time at(...) schedules, fired here at
                            their time; functions get AWS_ENDPOINT_URL_SCHEDULER=
                            http://127.0.0.1:<port> unless set
  /hls/...                  the media bucket (CDN stand-in); anything else: the web app

The stream poller reads the stream of TABLE_NAME from AWS_ENDPOINT_URL_DYNAMODB_STREAMS
(DynamoDB Local), else AWS_ENDPOINT_URL.
Once listening it prints one line to stdout: rill-gateway listening on http://127.0.0.1:<port>
Debug endpoints (local only, unauthenticated): GET /_gateway/stats, POST /_gateway/reset.
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub port: u16,
    pub template: PathBuf,
    pub functions_dir: PathBuf,
    pub static_dir: PathBuf,
    pub max_instances: usize,
    pub init_resources: bool,
    pub websocket: WebSocketSettings,
    /// Run the DynamoDB stream event source mappings.
    pub stream_poller: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--help`: not a failure, the caller prints [`USAGE`].
    #[error("help requested")]
    Help,
    #[error("{0}\n\n{USAGE}")]
    Invalid(String),
}

impl Config {
    /// Reads `std::env::args()` and the process environment.
    pub fn from_env_and_args() -> Result<Self, ConfigError> {
        Self::parse(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// `args` without the program name; `env` looks up a variable.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut port = env("PORT");
        let mut template = env("GATEWAY_TEMPLATE");
        let mut functions_dir = env("GATEWAY_FUNCTIONS_DIR");
        let mut static_dir = env("STATIC_DIR");
        let mut max_instances = env("GATEWAY_MAX_INSTANCES");
        let mut init_resources = match env("GATEWAY_INIT_RESOURCES") {
            None => false,
            Some(v) => parse_bool("GATEWAY_INIT_RESOURCES", &v)?,
        };
        let mut ws_idle_timeout = env("GATEWAY_WS_IDLE_TIMEOUT");
        let mut ws_max_age = env("GATEWAY_WS_MAX_AGE");
        let mut stream_poller = match env("GATEWAY_STREAM_POLLER") {
            None => true,
            Some(v) => parse_bool("GATEWAY_STREAM_POLLER", &v)?,
        };

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::Invalid(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "-h" | "--help" => return Err(ConfigError::Help),
                "--port" => port = Some(value()?),
                "--template" => template = Some(value()?),
                "--functions-dir" => functions_dir = Some(value()?),
                "--static-dir" => static_dir = Some(value()?),
                "--max-instances" => max_instances = Some(value()?),
                "--init-resources" => init_resources = true,
                "--ws-idle-timeout" => ws_idle_timeout = Some(value()?),
                "--ws-max-age" => ws_max_age = Some(value()?),
                "--no-stream-poller" => stream_poller = false,
                other => return Err(ConfigError::Invalid(format!("unknown argument {other}"))),
            }
        }

        let port = match port {
            None => 3000,
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("invalid port {p:?}")))?,
        };
        let max_instances = match max_instances {
            None => 4,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "invalid max instances {n:?} (a positive number)"
                    )));
                }
            },
        };
        let defaults = WebSocketSettings::default();
        let websocket = WebSocketSettings {
            idle_timeout: parse_seconds("idle timeout", ws_idle_timeout, defaults.idle_timeout)?,
            max_age: parse_seconds("max age", ws_max_age, defaults.max_age)?,
        };
        let functions_dir = match functions_dir {
            Some(dir) => PathBuf::from(dir),
            // Cargo puts every binary of the workspace in the same target/<profile>/.
            None => std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(PathBuf::from))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "cannot locate this executable; pass --functions-dir".into(),
                    )
                })?,
        };
        Ok(Self {
            port,
            template: template.map_or_else(|| PathBuf::from("infra/template.yaml"), PathBuf::from),
            functions_dir,
            static_dir: static_dir.map_or_else(|| PathBuf::from("web/dist"), PathBuf::from),
            max_instances,
            init_resources,
            websocket,
            stream_poller,
        })
    }
}

/// A positive number of seconds.
fn parse_seconds(
    what: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
            _ => Err(ConfigError::Invalid(format!(
                "invalid WebSocket {what} {v:?} (a positive number of seconds)"
            ))),
        },
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid(format!(
            "{name}={value:?} is not a boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::parse(args.iter().map(|a| (*a).to_owned()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_apply_without_flags_or_env() {
        let c = parse(&[], &[]).expect("valid");
        assert_eq!(c.port, 3000);
        assert_eq!(c.template, PathBuf::from("infra/template.yaml"));
        assert_eq!(c.static_dir, PathBuf::from("web/dist"));
        assert_eq!(c.max_instances, 4);
        assert!(!c.init_resources);
        assert_eq!(c.websocket.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.websocket.max_age, Duration::from_secs(7200));
        assert!(c.stream_poller);
    }

    #[test]
    fn websocket_and_stream_poller_settings_come_from_flags_or_environment() {
        let c = parse(
            &["--ws-idle-timeout", "5", "--no-stream-poller"],
            &[
                ("GATEWAY_WS_MAX_AGE", "60"),
                ("GATEWAY_WS_IDLE_TIMEOUT", "9"),
            ],
        )
        .expect("valid");
        assert_eq!(c.websocket.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.websocket.max_age, Duration::from_secs(60));
        assert!(!c.stream_poller);
        let c = parse(&[], &[("GATEWAY_STREAM_POLLER", "0")]).expect("valid");
        assert!(!c.stream_poller);
        assert!(parse(&["--ws-max-age", "0"], &[]).is_err());
        assert!(parse(&[], &[("GATEWAY_WS_IDLE_TIMEOUT", "soon")]).is_err());
    }

    #[test]
    fn flags_win_over_environment() {
        let c = parse(
            &[
                "--port",
                "0",
                "--template=t.yaml",
                "--functions-dir",
                "/bin",
            ],
            &[
                ("PORT", "8080"),
                ("GATEWAY_MAX_INSTANCES", "2"),
                ("GATEWAY_INIT_RESOURCES", "1"),
            ],
        )
        .expect("valid");
        assert_eq!(c.port, 0);
        assert_eq!(c.template, PathBuf::from("t.yaml"));
        assert_eq!(c.functions_dir, PathBuf::from("/bin"));
        assert_eq!(c.max_instances, 2);
        assert!(c.init_resources);
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(parse(&["--port", "x"], &[]).is_err());
        assert!(parse(&["--port"], &[]).is_err());
        assert!(parse(&["--bogus"], &[]).is_err());
        assert!(parse(&["--max-instances", "0"], &[]).is_err());
        assert!(parse(&[], &[("GATEWAY_INIT_RESOURCES", "maybe")]).is_err());
        assert_eq!(parse(&["--help"], &[]), Err(ConfigError::Help));
    }
}
