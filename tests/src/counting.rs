//! A counting proxy in front of the stack's DynamoDB (DynamoDB Local, or moto with
//! `RILL_DYNAMODB=moto`): every request the functions make is forwarded unchanged and
//! recorded with the function that made it (the SDK's app name, `app/<name>` in
//! `x-amz-user-agent`, which `rill_aws::sdk_config` sets from
//! `AWS_LAMBDA_FUNCTION_NAME`) and its operation (`X-Amz-Target` for DynamoDB). The
//! storage-call budgets are asserted against these counts: real requests of the real
//! binaries, not a model of them.
//!
//! It also injects faults on demand ([`Fault`]): the fault tests take the table away from
//! the real binaries this way, while the harness's own clients still reach it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;

/// One storage request: which function sent it and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The function (`ws-connect`, ...); `None` for the gateway and the harness.
    pub function: Option<String>,
    /// `GetItem`, `TransactWriteItems`, ... for DynamoDB; `S3 PUT` etc. for S3. A write
    /// of an analytics minute bucket (`MIN#` key) is `UpdateItem MIN#`: the budgets of the
    /// realtime paths count it apart (it is per stream-minute, not per operation).
    pub operation: String,
}

impl Call {
    /// DynamoDB data-plane calls (not DynamoDB Streams, which only the gateway polls).
    pub fn is_dynamodb(&self) -> bool {
        !self.operation.starts_with("S3 ") && !self.operation.starts_with("Streams.")
    }
}

/// What the proxy does with the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forwards them.
    #[default]
    None,
    /// Answers each at once with a 500 `InternalServerError`, as a failing DynamoDB does
    /// (the SDK retries it, then gives up).
    Refuse,
    /// Holds each for a minute without an answer, as a stalled network does.
    Stall,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<(Instant, Call)>>>,
    fault: Arc<Mutex<Fault>>,
}

/// The proxy's address and what it has seen; it runs on its own thread until the process ends.
#[derive(Clone, Debug)]
pub struct Counter {
    pub url: String,
    calls: Arc<Mutex<Vec<(Instant, Call)>>>,
    fault: Arc<Mutex<Fault>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proxy")
    }
}

impl Counter {
    /// Starts a proxy to `upstream` (the DynamoDB endpoint's URL) on a free port.
    pub fn start(upstream: &str) -> Counter {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fault = Arc::new(Mutex::new(Fault::None));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            calls: calls.clone(),
            fault: fault.clone(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(forward).with_state(proxy);
                let _ = axum::serve(listener, app).await;
            });
        });
        Counter { url, calls, fault }
    }

    /// From now on, treats requests as `fault` says.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }

    /// Forgets everything seen so far.
    pub fn clear(&self) {
        self.calls.lock().expect("calls").clear();
    }

    /// Waits until no function's request has come for `quiet` (counted from the call at the earliest:
    /// the work set off has had time to start and finish), at most `within`, and returns
    /// what was seen.
    pub async fn settle(&self, quiet: Duration, within: Duration) -> Vec<Call> {
        let start = Instant::now();
        let deadline = start + within;
        loop {
            // The gateway's own polling (the table stream, every 250 ms) never stops:
            // quiet means no function has called for a while.
            let last = self
                .calls
                .lock()
                .expect("calls")
                .iter()
                .rev()
                .find(|(_, c)| c.function.is_some())
                .map_or(start, |(t, _)| (*t).max(start));
            let idle = last.elapsed() >= quiet;
            if idle || Instant::now() >= deadline {
                return self.calls();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// DynamoDB calls made by `function`, by operation, in order.
    pub fn dynamodb_calls_of(&self, function: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.function.as_deref() == Some(function) && c.is_dynamodb())
            .map(|c| c.operation)
            .collect()
    }
}

fn classify(req: &axum::http::request::Parts, body: &[u8]) -> Call {
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let agent = format!("{} {}", header("x-amz-user-agent"), header("user-agent"));
    let function = agent
        .split_whitespace()
        .find_map(|part| part.strip_prefix("app/"))
        .map(str::to_owned);
    let target = header("x-amz-target");
    let operation = match target.split_once('.') {
        Some((service, op)) if service.starts_with("DynamoDBStreams") => format!("Streams.{op}"),
        Some((_, op)) if op == "UpdateItem" && contains(body, b"\"MIN#") => {
            "UpdateItem MIN#".to_owned()
        }
        Some((_, op)) => op.to_owned(),
        None => format!("S3 {}", req.method),
    };
    Call {
        function,
        operation,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn forward(State(proxy): State<Proxy>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return bad_gateway("request body");
    };
    let call = classify(&parts, &body);
    proxy
        .calls
        .lock()
        .expect("calls")
        .push((Instant::now(), call));
    let fault = *proxy.fault.lock().expect("fault");
    match fault {
        Fault::None => {}
        Fault::Refuse => {
            return Response::builder()
                .status(500)
                .header("content-type", "application/x-amz-json-1.0")
                .body(Body::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}"#,
                ))
                .unwrap_or_default();
        }
        Fault::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return bad_gateway("stalled");
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if *name != axum::http::header::HOST {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(reply) = out.send().await else {
        return bad_gateway("upstream");
    };
    let status = reply.status().as_u16();
    let headers = reply.headers().clone();
    let Ok(bytes) = reply.bytes().await else {
        return bad_gateway("upstream body");
    };
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name.as_str() != "transfer-encoding" && name.as_str() != "content-length" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| bad_gateway("response"))
}

fn bad_gateway(what: &str) -> Response {
    Response::builder()
        .status(502)
        .body(Body::from(format!("counting proxy: {what} failed")))
        .unwrap_or_default()
}
