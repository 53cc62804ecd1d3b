//! Test harness for Rill's end-to-end scenarios: real backing services (moto for S3,
//! Amazon's DynamoDB Local for DynamoDB and its Streams: [`services`]) and a real
//! `rill-gateway` running the real function binaries, each on a free port.
//!
//! - One process of each service per test binary, shared by its tests; each [`Stack`] gets
//!   its own table and bucket names, so tests never see each other's data.
//! - Every process started here dies with the test process: the services through a shell
//!   wrapper that kills them when our end of their stdin closes, the gateway through
//!   [`Drop`] (and the gateway takes its function instances down with it).
//!
//! The binaries must be built first (`cargo build --workspace`); the harness looks for them
//! next to the test executable's parent directory, where cargo puts them. The function
//! binaries can come from elsewhere: `RILL_FUNCTIONS_DIR` (see [`functions_dir`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser;
pub mod counting;
pub mod idp;
pub mod ingest;
pub mod services;
pub use browser::BrowserStack;
pub use counting::Counter;
pub use idp::TestIdp;
pub use ingest::{IngestNode, RtmpPublisher, publish_rtmp, test_pattern_args};
pub use services::moto_python;
pub use services::{dynamodb_url, moto_url};

pub const JWT_SECRET: &str = "rill-test-secret-0123456789abcdef";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `target/<profile>/`, where cargo puts the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    // Tests run from target/<profile>/deps/, the benchmark binary from target/<profile>/.
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    }
    .to_path_buf()
}

/// Where the gateway finds the function binaries: `RILL_FUNCTIONS_DIR` if set (e.g. a
/// directory of `cargo lambda build` bootstraps, one file per function name, to benchmark
/// the shipped artifacts), else [`bin_dir`].
pub fn functions_dir() -> PathBuf {
    std::env::var_os("RILL_FUNCTIONS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(bin_dir)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts one of our servers (`extra_env` last, so it wins; `RILL_TEST_LOG` as `RUST_LOG`)
/// and returns it with the first line it prints, which announces where it listens.
fn spawn_announcing(mut cmd: Command, extra_env: &[(&str, &str)]) -> (Child, String) {
    cmd.env(
        "RUST_LOG",
        std::env::var("RILL_TEST_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .stdout(Stdio::piped())
    .stdin(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{program} stdout: {e}"));
    (child, line)
}

/// The SDK configuration for the moto at `url` (every service), with the test credentials.
pub async fn moto_sdk(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "rill-tests",
        ))
        .load()
        .await
}

/// Environment every process of the stack shares: moto for S3 (and the rest), `dynamodb`
/// for DynamoDB and DynamoDB Streams.
pub fn aws_env(moto: &str, dynamodb: &str, table: &str, bucket: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", dynamodb),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("TABLE_NAME", table),
        ("BUCKET_NAME", bucket),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A running gateway with its own table and bucket.
#[derive(Debug)]
pub struct Stack {
    pub base: String,
    /// S3 (and every service but DynamoDB).
    pub moto: String,
    /// DynamoDB and DynamoDB Streams: DynamoDB Local (or moto, `RILL_DYNAMODB=moto`).
    pub dynamodb: String,
    pub table: String,
    pub bucket: String,
    gateway: Child,
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts a gateway on a free port against the shared services, creating a fresh table
    /// and bucket. `extra_env` is passed to the gateway and so to every function.
    pub fn start_with(extra_env: &[(&str, &str)]) -> Stack {
        Stack::start_on(dynamodb_url(), extra_env)
    }

    /// A stack whose gateway and functions reach DynamoDB through a [`Counter`], which
    /// records every DynamoDB request with the function that made it.
    pub fn start_counted(extra_env: &[(&str, &str)]) -> (Stack, Counter) {
        let counter = Counter::start(&dynamodb_url());
        let mut stack = Stack::start_on(counter.url.clone(), extra_env);
        // The harness's own clients go to DynamoDB directly: only the stack is counted.
        stack.dynamodb = dynamodb_url();
        (stack, counter)
    }

    fn start_on(dynamodb: String, extra_env: &[(&str, &str)]) -> Stack {
        let moto = moto_url();
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        let table = format!("rill-{suffix}");
        let bucket = format!("rill-{suffix}");
        let gateway_bin = bin_dir().join("rill-gateway");
        assert!(
            gateway_bin.exists(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            gateway_bin.display()
        );
        let mut cmd = Command::new(&gateway_bin);
        cmd.args(["--port", "0", "--init-resources"])
            .arg("--template")
            .arg(repo_root().join("infra/template.yaml"))
            .arg("--functions-dir")
            .arg(functions_dir())
            .envs(aws_env(&moto, &dynamodb, &table, &bucket))
            .env("JWT_SECRET", JWT_SECRET);
        let (gateway, line) = spawn_announcing(cmd, extra_env);
        let base = line
            .trim()
            .strip_prefix("rill-gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected gateway output: {line:?}"))
            .to_owned();
        Stack {
            base,
            moto,
            dynamodb,
            table,
            bucket,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    pub fn start() -> Stack {
        Stack::start_with(&[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` on the gateway (e.g. a playlist under `/hls`): the body on a 2xx, else
    /// `None` (not there yet, or an error).
    pub async fn bytes(&self, path: &str) -> Option<Vec<u8>> {
        let r = self.http.get(self.url(path)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.bytes().await.ok().map(|b| b.to_vec())
    }

    /// [`Stack::bytes`] as text.
    pub async fn text(&self, path: &str) -> Option<String> {
        String::from_utf8(self.bytes(path).await?).ok()
    }

    /// A direct DynamoDB client on the same table, to check what is (not) stored and to act
    /// as the ingest node would.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let sdk = self.sdk().await;
        let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&self.dynamodb)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = self.sdk().await;
        rill_aws::s3_client(&sdk)
    }

    /// The SDK configuration of the stack's moto (for clients the harness does not wrap;
    /// a DynamoDB client needs [`Stack::dynamodb`]'s endpoint).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        moto_sdk(&self.moto).await
    }

    /// Creates a stream on `channel` as `owner` and moves it to `live` as the ingest node
    /// does once its first segments are stored. Returns the stream id.
    pub async fn live_stream(
        &self,
        owner: &User,
        channel: &str,
        title: &str,
        settings: Value,
    ) -> String {
        let r = owner
            .post(
                self,
                "/api/streams/create",
                serde_json::json!({"channelId": channel, "title": title, "settings": settings}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().expect("id").to_owned();
        self.go_live(&id).await;
        id
    }

    /// `preparing -> live`, written the way the ingest node writes it.
    pub async fn go_live(&self, id: &str) {
        use rill_core::store::StreamStore;
        let stream = self
            .store()
            .await
            .apply(id, rill_core::Command::GoLive, rill_core::time::now())
            .await
            .expect("go live");
        assert_eq!(stream.status, rill_core::StreamStatus::Live);
    }

    pub async fn store(&self) -> rill_aws::store::DynamoStore {
        rill_aws::store::DynamoStore::new(self.dynamodb().await, self.table.clone())
    }

    /// Every item in the table (test tables are small).
    pub async fn scan_all(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let out = self
            .dynamodb()
            .await
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan");
        out.items.unwrap_or_default()
    }

    /// Every item whose sort key starts with `prefix` (`CHAT#`, `VIEWER#`, ...).
    pub async fn items_with_sk_prefix(
        &self,
        prefix: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.scan_all()
            .await
            .into_iter()
            .filter(|i| {
                i.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s.starts_with(prefix))
            })
            .collect()
    }

    /// The gateway's `/_gateway/stats`: per function, instances, invocations, cold starts.
    pub async fn gateway_stats(&self) -> Value {
        self.http
            .get(self.url("/_gateway/stats"))
            .send()
            .await
            .expect("gateway stats")
            .json()
            .await
            .expect("gateway stats JSON")
    }

    pub fn gateway_pid(&self) -> u32 {
        self.gateway.id()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SIGTERM lets the gateway stop its function instances; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.gateway.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.gateway.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.gateway.kill();
        let _ = self.gateway.wait();
    }
}

/// A signed HS256 token like the dev token the README prints.
pub fn token(sub: &str, name: &str) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "name": name,
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign token")
}

/// utime + stime, in seconds, from a `/proc/.../stat` file (a process's `/proc/{pid}/stat`
/// or a thread's `/proc/{pid}/task/{tid}/stat`); 0 when it cannot be read. The benchmarks
/// divide CPU by work with it.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15, in the kernel's 1/100 s ticks.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A response read whole: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A client acting as one user (or anonymous).
#[derive(Debug, Clone)]
pub struct User {
    pub token: Option<String>,
}

/// A channel `channel` created by `owner`, followed by a new user `follower` (who signs
/// up for it as followers do: a `PUT` of their own membership). Returns the follower.
pub async fn channel_with_follower(
    stack: &Stack,
    owner: &User,
    channel: &str,
    follower: &str,
) -> User {
    let r = owner
        .post(
            stack,
            "/api/channels",
            serde_json::json!({"id": channel, "name": channel}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = User::named(follower);
    let r = user
        .send(
            stack,
            "PUT",
            &format!("/api/channels/{channel}/members/{follower}"),
            Some(serde_json::json!({"role": "follower"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    user
}

impl User {
    pub fn named(sub: &str) -> User {
        User {
            token: Some(token(sub, &format!("{sub} (display)"))),
        }
    }

    pub fn anonymous() -> User {
        User { token: None }
    }

    /// A user carrying this exact token (e.g. one from [`TestIdp::mint`]).
    pub fn bearing(token: String) -> User {
        User { token: Some(token) }
    }

    fn with_auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, stack: &Stack, path: &str) -> Reply {
        Reply::from(
            self.with_auth(stack.http.get(stack.url(path)))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn send(
        &self,
        stack: &Stack,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.with_auth(stack.http.request(method, stack.url(path)));
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    /// `POST /api/streams/create` as this user; panics unless 201. Returns the stream's id
    /// and its stream key.
    pub async fn create_stream(&self, stack: &Stack, body: Value) -> (String, String) {
        let r = self.post(stack, "/api/streams/create", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["id"].as_str().expect("id").to_owned(),
            r.body["ingest"]["streamKey"]
                .as_str()
                .expect("key")
                .to_owned(),
        )
    }

    pub async fn post(&self, stack: &Stack, path: &str, body: Value) -> Reply {
        self.send(stack, "POST", path, Some(body)).await
    }
}

/// A WebSocket client on the gateway's `/ws`, as a browser viewer would open it.
pub struct Socket {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Socket")
    }
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Connect {
    Open(Box<Socket>),
    /// The handshake was refused with this HTTP status.
    Refused(u16),
}

impl Stack {
    /// Opens `/ws?streamId=...&token=...`.
    pub async fn connect(&self, stream_id: &str, user: &User) -> Connect {
        self.connect_with(&format!("streamId={stream_id}"), user, &[])
            .await
    }

    /// Opens a notifications socket: `/ws?token=...`, no stream.
    pub async fn notifications_socket(&self, user: &User) -> Connect {
        self.connect_with("", user, &[]).await
    }

    /// Opens `/ws?{query}&token=...` (the token of `user`, if any) with extra request
    /// `headers` (a browser's `User-Agent`, CloudFront's viewer country).
    async fn connect_with(&self, query: &str, user: &User, headers: &[(&str, &str)]) -> Connect {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut params: Vec<String> = Vec::new();
        if !query.is_empty() {
            params.push(query.to_owned());
        }
        if let Some(t) = &user.token {
            params.push(format!("token={t}"));
        }
        let url = format!(
            "{}/ws?{}",
            self.base.replacen("http://", "ws://", 1),
            params.join("&")
        );
        let mut request = url.into_client_request().expect("a websocket url");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                tokio_tungstenite::tungstenite::http::HeaderValue::from_str(value)
                    .expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Connect::Open(Box::new(Socket { stream })),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                Connect::Refused(res.status().as_u16())
            }
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    /// Opens a socket that must be accepted, with extra request headers.
    pub async fn socket_with_headers(
        &self,
        stream_id: &str,
        user: &User,
        headers: &[(&str, &str)],
    ) -> Socket {
        match self
            .connect_with(&format!("streamId={stream_id}"), user, headers)
            .await
        {
            Connect::Open(s) => *s,
            Connect::Refused(status) => panic!("socket refused with {status}"),
        }
    }

    /// Opens a socket that must be accepted.
    pub async fn socket(&self, stream_id: &str, user: &User) -> Socket {
        match self.connect(stream_id, user).await {
            Connect::Open(s) => *s,
            Connect::Refused(status) => panic!("socket refused with {status}"),
        }
    }
}

impl Socket {
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send frame");
    }

    /// The next JSON frame within `within`, or `None`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("frames are JSON"));
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Waits for a frame of `kind` (e.g. "stream:chat-message"), skipping others.
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(f) if f["type"] == kind => return f,
                Some(_) => continue,
                None => panic!("no {kind} frame within {within:?}"),
            }
        }
    }

    /// Every frame that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        while let Some(f) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(f);
        }
        frames
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Drops the connection without a WebSocket close handshake (a viewer's tab or
    /// network vanishing): the server sees the TCP connection end, no close frame.
    pub fn abort(self) {
        drop(self);
    }
}

/// Polls `check` every 250 ms until it holds; panics naming `what` after `within`.
pub async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}
