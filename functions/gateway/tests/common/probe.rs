//! The WebSocket test harness shared by `websocket.rs` and `websocket_authorizer.rs`: a
//! template whose every route is the `ws_probe` example (optionally with the probe as the
//! `$connect` authorizer too), the gateway running it, a tokio-tungstenite client, the
//! events the probe logged, and the real SDK for Management API calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Gateway, examples_dir, temp_dir};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const USER_AGENT: &str = "rill-gateway-test/1";

pub const ROUTES: &[(&str, &str)] = &[
    ("Connect", "$connect"),
    ("Disconnect", "$disconnect"),
    ("Default", "$default"),
    ("Echo", "echo"),
    ("Sleep", "sleep"),
    ("Fail", "fail"),
    ("Status", "status"),
    ("Close", "close"),
];

/// A WebSocket API whose every route is the `ws_probe` example.
pub fn template() -> String {
    build_template(None)
}

/// [`template`] with the probe as the `$connect` route's Lambda REQUEST authorizer too,
/// with these `IdentitySource` entries.
pub fn authorized_template(identity_sources: &[&str]) -> String {
    build_template(Some(identity_sources))
}

fn build_template(authorizer: Option<&[&str]>) -> String {
    let mut t = String::from(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  WebSocketApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
  WebSocketStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref WebSocketApi, StageName: live, AutoDeploy: true }
  WsProbeFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: ws_probe
    Properties:
      Handler: bootstrap
      Timeout: 5
  WsProbeIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref WebSocketApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WsProbeFunction.Arn}/invocations
"#,
    );
    for (name, key) in ROUTES {
        t.push_str(&format!(
            "  {name}Route:\n    Type: AWS::ApiGatewayV2::Route\n    Properties:\n      \
             ApiId: !Ref WebSocketApi\n      RouteKey: \"{key}\"\n      \
             Target: !Sub integrations/${{WsProbeIntegration}}\n"
        ));
        if *key == "$connect" && authorizer.is_some() {
            t.push_str(
                "      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref ProbeAuthorizer\n",
            );
        }
    }
    if let Some(sources) = authorizer {
        t.push_str(
            "  ProbeAuthorizer:\n    Type: AWS::ApiGatewayV2::Authorizer\n    Properties:\n      \
             ApiId: !Ref WebSocketApi\n      Name: probe\n      AuthorizerType: REQUEST\n      \
             AuthorizerUri: !Sub arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/\
             2015-03-31/functions/${WsProbeFunction.Arn}/invocations\n",
        );
        if !sources.is_empty() {
            t.push_str("      IdentitySource:\n");
            for source in sources {
                t.push_str(&format!("        - {source}\n"));
            }
        }
    }
    t
}

/// A gateway running the probe, and the file the probe logs its events to.
pub struct Probe {
    pub gateway: Gateway,
    pub log: PathBuf,
}

impl Probe {
    pub fn start(extra: &[(&str, &str)]) -> Self {
        Self::start_with(&template(), extra)
    }

    /// A gateway serving `template` (one of this module's) with the probe.
    pub fn start_with(template: &str, extra: &[(&str, &str)]) -> Self {
        let log = temp_dir().join("events.jsonl");
        let log_text = log.display().to_string();
        let mut env: Vec<(&str, &str)> = vec![("PROBE_LOG", &log_text)];
        env.extend_from_slice(extra);
        let gateway =
            Gateway::start(template, &examples_dir(&["ws_probe"]), &env).expect("gateway starts");
        Self { gateway, log }
    }

    pub fn url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?{query}", self.gateway.port)
    }

    pub async fn connect(&self, query: &str) -> Client {
        let mut request = self.url(query).into_client_request().expect("request");
        request
            .headers_mut()
            .insert("user-agent", http::HeaderValue::from_static(USER_AGENT));
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("handshake completes");
        assert_eq!(response.status(), 101);
        ws
    }

    pub fn sdk(&self, stage_path: &str) -> aws_sdk_apigatewaymanagement::Client {
        management_client(self.gateway.port, stage_path)
    }

    /// The events the probe has logged so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.log)
    }

    /// Waits until an event satisfies `pred`, then returns all events.
    pub async fn wait_for_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_until(what, |events| events.iter().any(&pred))
            .await
    }

    /// Waits until the events so far satisfy `pred`, then returns them.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events();
            if pred(&events) {
                return events;
            }
            assert!(Instant::now() < deadline, "no {what}; got {events:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("probe writes JSON lines"))
        .collect()
}

pub fn management_client(port: u16, stage_path: &str) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "t"))
        .endpoint_url(format!("http://127.0.0.1:{port}{stage_path}"))
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// `CONNECT`, `MESSAGE`, `DISCONNECT`, or `AUTHORIZER` for the authorizer's input (whose
/// `requestContext` is the `CONNECT` one).
pub fn event_type(event: &Value) -> &str {
    if event["type"] == "REQUEST" {
        return "AUTHORIZER";
    }
    event["requestContext"]["eventType"].as_str().unwrap_or("")
}

pub fn connection_of(event: &Value) -> &str {
    event["requestContext"]["connectionId"]
        .as_str()
        .unwrap_or("")
}

/// The connection id of the newest CONNECT event.
pub fn last_connection_id(events: &[Value]) -> String {
    events
        .iter()
        .rev()
        .find(|e| event_type(e) == "CONNECT")
        .map(|e| connection_of(e).to_owned())
        .expect("a CONNECT event")
}

/// The next data frame, skipping control frames.
pub async fn next_frame(ws: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame within 15 s")
            .expect("connection open")
            .expect("valid frame");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub async fn next_json(ws: &mut Client) -> Value {
    match next_frame(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn close_frame(ws: &mut Client) -> (u16, String) {
    loop {
        match next_frame(ws).await {
            Message::Close(Some(frame)) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Message::Close(None) => return (1005, String::new()),
            _ => {}
        }
    }
}

pub async fn send(ws: &mut Client, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send frame");
}
