//! [`SignedClient`]: SigV4-signed requests to AWS APIs that Rill calls too rarely to justify
//! an SDK crate each (ECS `DescribeTasks`, EC2 `DescribeNetworkInterfaces`, CloudWatch
//! `PutMetricData`, EventBridge Scheduler's schedules, Application Auto Scaling's
//! `RegisterScalableTarget`, Lambda's asynchronous `Invoke`, Secrets Manager's
//! `GetSecretValue`), and plain requests to the task-local ECS endpoints (task
//! metadata, the agent's scale-in protection). Three wire protocols: JSON 1.1
//! ([`SignedClient::call_json`]), Query ([`SignedClient::call_query`]) and REST-JSON
//! ([`SignedClient::call_rest_json`]).
//!
//! Invariants:
//! - credentials come from the node's [`SdkConfig`] (the standard chain: the task role on
//!   ECS) and are cached until five minutes before they expire; they never appear in a log or
//!   an error, and the signature headers are marked sensitive;
//! - every request has a deadline ([`AWS_TIMEOUT`] for AWS, [`LOCAL_TIMEOUT`] for the
//!   task-local endpoints), so a hung endpoint cannot stall a heartbeat;
//! - the endpoint overrides carried by the [`SdkConfig`] apply as they do for the SDK
//!   clients: a service's own (`AWS_ENDPOINT_URL_LAMBDA`, answered by the configuration's
//!   service config for the service id) wins, else the shared `AWS_ENDPOINT_URL`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_types::service_config::ServiceConfigKey;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

use super::EcsError;

/// Deadline of one AWS API call (connect, send, and read the whole response).
pub const AWS_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one call to the task metadata or agent endpoint (link-local, answers in ms).
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Cached credentials are replaced this long before they expire.
const REFRESH_CREDENTIALS_BEFORE: Duration = Duration::from_secs(300);

/// An AWS service [`SignedClient`] can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Amazon ECS (JSON 1.1 protocol).
    Ecs,
    /// Amazon EC2 (Query protocol, XML responses).
    Ec2,
    /// Amazon CloudWatch (Query protocol, XML responses).
    CloudWatch,
    /// Amazon EventBridge Scheduler (REST-JSON protocol).
    Scheduler,
    /// Application Auto Scaling (JSON 1.1 protocol, target prefix `AnyScaleFrontendService`).
    ApplicationAutoScaling,
    /// AWS Lambda (REST-JSON protocol; `Invoke` takes the function's raw payload).
    Lambda,
    /// AWS Secrets Manager (JSON 1.1 protocol; `GetSecretValue` once per cold start).
    SecretsManager,
    /// Amazon EventBridge (JSON 1.1 protocol, target prefix `AWSEvents`; `PutEvents`).
    Events,
}

/// Every service, for resolving their endpoints once.
const SERVICES: [Service; 8] = [
    Service::Ecs,
    Service::Ec2,
    Service::CloudWatch,
    Service::Scheduler,
    Service::ApplicationAutoScaling,
    Service::Lambda,
    Service::SecretsManager,
    Service::Events,
];

impl Service {
    /// The SigV4 signing name, which is also the endpoint's host prefix.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::Ec2 => "ec2",
            Service::CloudWatch => "monitoring",
            Service::Scheduler => "scheduler",
            Service::ApplicationAutoScaling => "application-autoscaling",
            Service::Lambda => "lambda",
            Service::SecretsManager => "secretsmanager",
            Service::Events => "events",
        }
    }

    /// The SDK's service id, under which `AWS_ENDPOINT_URL_<ID>` is looked up.
    pub fn service_id(self) -> &'static str {
        match self {
            Service::Ecs => "ECS",
            Service::Ec2 => "EC2",
            Service::CloudWatch => "CloudWatch",
            Service::Scheduler => "Scheduler",
            Service::ApplicationAutoScaling => "Application Auto Scaling",
            Service::Lambda => "Lambda",
            Service::SecretsManager => "Secrets Manager",
            Service::Events => "EventBridge",
        }
    }
}

/// The service's own endpoint from the configuration's service config, as the SDK client
/// of that service would find it.
fn service_endpoint(sdk: &SdkConfig, service: Service) -> Option<String> {
    let key = ServiceConfigKey::builder()
        .service_id(service.service_id())
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()?
        .load_config(key)
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// Signs requests with the node's credentials and sends them (cheap to clone).
#[derive(Clone)]
pub struct SignedClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
    region: String,
    endpoint_url: Option<String>,
    /// Per-service overrides, which win over `endpoint_url`.
    service_endpoints: Vec<(Service, String)>,
}

impl fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedClient")
            .field("region", &self.inner.region)
            .field("endpoint_url", &self.inner.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// A response: status and body.
type Reply = (u16, Bytes);

/// A response from an AWS API.
#[derive(Debug)]
pub struct SignedReply {
    pub status: u16,
    /// `x-amzn-ErrorType` (REST-JSON errors name their type there).
    pub error_type: Option<String>,
    pub body: Bytes,
}

/// The error of a JSON 1.1 or REST-JSON operation: the code from `x-amzn-ErrorType` or the
/// body's `__type`/`code` (a `prefix#Code` or `Code:uri` form reduced to `Code`), the
/// message from `message`/`Message`. An authentication failure in front of the service may
/// answer in XML instead.
fn json_error(operation: &str, reply: &SignedReply) -> EcsError {
    let doc: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let text = String::from_utf8_lossy(&reply.body);
    let code = reply
        .error_type
        .as_deref()
        .or_else(|| doc["__type"].as_str())
        .or_else(|| doc["code"].as_str())
        .map(|c| {
            let c = c.split(':').next().unwrap_or(c);
            c.rsplit('#').next().unwrap_or(c).to_owned()
        })
        .or_else(|| xml_text(&text, "Code"))
        .unwrap_or_default();
    let message = doc["message"]
        .as_str()
        .or_else(|| doc["Message"].as_str())
        .map(str::to_owned)
        .or_else(|| xml_text(&text, "Message"))
        .unwrap_or_default();
    EcsError::Api {
        operation: operation.to_owned(),
        status: reply.status,
        code,
        message,
    }
}

impl SignedClient {
    /// A client with the configuration's region, credentials and endpoint override. Fails
    /// only when the configuration has no region or the system has no TLS roots.
    pub fn new(sdk: &SdkConfig) -> Result<SignedClient, EcsError> {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| EcsError::Config("no AWS region configured".into()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| EcsError::Config(format!("TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(SignedClient {
            inner: Arc::new(Inner {
                http: Client::builder(TokioExecutor::new()).build(https),
                credentials: sdk.credentials_provider(),
                cached: Mutex::new(None),
                region,
                endpoint_url: sdk
                    .endpoint_url()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                service_endpoints: SERVICES
                    .into_iter()
                    .filter_map(|s| service_endpoint(sdk, s).map(|u| (s, u)))
                    .collect(),
            }),
        })
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The service's base URL: its own override, else the shared override, else the
    /// regional endpoint.
    pub fn endpoint(&self, service: Service) -> String {
        if let Some((_, url)) = self
            .inner
            .service_endpoints
            .iter()
            .find(|(s, _)| *s == service)
        {
            return url.clone();
        }
        if let Some(url) = &self.inner.endpoint_url {
            return url.clone();
        }
        let region = &self.inner.region;
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{}.{region}.{suffix}", service.signing_name())
    }

    /// Calls a JSON 1.1 operation (`target` is the `X-Amz-Target`, e.g.
    /// `AmazonEC2ContainerServiceV20141113.DescribeTasks`) and returns the response document.
    pub async fn call_json(
        &self,
        service: Service,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, EcsError> {
        let operation = target.rsplit('.').next().unwrap_or(target);
        let body = serde_json::to_vec(body).map_err(|e| EcsError::Response {
            operation: operation.to_owned(),
            reason: format!("request does not serialise: {e}"),
        })?;
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let reply = self
            .send_signed(service, "POST", "/", &headers, body)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(json_error(operation, &reply));
        }
        serde_json::from_slice(&reply.body).map_err(|e| EcsError::Response {
            operation: operation.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// Calls a REST-JSON operation: `method` on `path_and_query` (already percent-encoded,
    /// e.g. `/schedules/prewarm-01J?groupName=rill`) with an optional JSON body. Returns the
    /// response document (`Null` for an empty body). `operation` names the call in errors.
    pub async fn call_rest_json(
        &self,
        service: Service,
        operation: &str,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, EcsError> {
        let body = match body {
            Some(doc) => serde_json::to_vec(doc).map_err(|e| EcsError::Response {
                operation: operation.to_owned(),
                reason: format!("request does not serialise: {e}"),
            })?,
            None => Vec::new(),
        };
        let headers = [("content-type", "application/json")];
        let reply = self
            .send_signed(service, method, path_and_query, &headers, body)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(json_error(operation, &reply));
        }
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&reply.body).map_err(|e| EcsError::Response {
            operation: operation.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// Sends a REST request with a raw body and extra headers (Lambda's `Invoke` takes the
    /// function's payload as the body and its options as `X-Amz-*` headers). Returns the
    /// status and body of a 2xx answer; anything else is the operation's error.
    pub async fn call_rest_raw(
        &self,
        service: Service,
        operation: &str,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), EcsError> {
        let reply = self
            .send_signed(service, method, path_and_query, headers, body)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(json_error(operation, &reply));
        }
        Ok((reply.status, reply.body))
    }

    /// Calls a Query-protocol operation; `params` carry `Action` and `Version` with the
    /// operation's own parameters. Returns the XML response body.
    pub async fn call_query(
        &self,
        service: Service,
        params: &[(&str, &str)],
    ) -> Result<String, EcsError> {
        let operation = params
            .iter()
            .find(|(k, _)| *k == "Action")
            .map_or("?", |(_, v)| *v)
            .to_owned();
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let reply = self
            .send_signed(service, "POST", "/", &headers, body.into_bytes())
            .await?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if !(200..300).contains(&reply.status) {
            return Err(EcsError::Api {
                operation,
                status: reply.status,
                code: xml_text(&text, "Code").unwrap_or_default(),
                message: xml_text(&text, "Message").unwrap_or_default(),
            });
        }
        Ok(text)
    }

    /// GET on a task-local endpoint (no signature).
    pub(crate) async fn get_local(&self, url: &str) -> Result<Reply, EcsError> {
        let request = http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| EcsError::Transport(format!("GET {url}: {e}")))?;
        self.send(request, LOCAL_TIMEOUT).await
    }

    /// PUT of a JSON document on a task-local endpoint (no signature).
    pub(crate) async fn put_local_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, EcsError> {
        let request = http::Request::put(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| EcsError::Transport(format!("PUT {url}: {e}")))?;
        self.send(request, LOCAL_TIMEOUT).await
    }

    async fn send_signed(
        &self,
        service: Service,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<SignedReply, EcsError> {
        let base_url = self.endpoint(service);
        self.call_at(
            &base_url,
            service.signing_name(),
            method,
            path_and_query,
            headers,
            body,
        )
        .await
    }

    /// Sends a request signed for `signing_name` to `base_url` + `path_and_query` (already
    /// percent-encoded): for APIs whose endpoint is not per region but per resource, as the
    /// API Gateway Management API's (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    /// Answers whatever the status; the operation wrappers above turn a non-2xx into errors.
    pub async fn call_at(
        &self,
        base_url: &str,
        signing_name: &str,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<SignedReply, EcsError> {
        let url = format!("{base_url}{path_and_query}");
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EcsError::Config(format!("endpoint {url}: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| EcsError::Config(format!("endpoint {url} has no host")))?;
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("host", &host));

        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.inner.region)
            .name(signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| EcsError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            all.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| EcsError::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| EcsError::Signing(e.to_string()))?
            .into_parts();

        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &all {
            builder = builder.header(*name, *value);
        }
        let mut request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EcsError::Transport(format!("request to {url}: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        let (status, headers, body) = self.exchange(request, AWS_TIMEOUT).await?;
        let error_type = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(SignedReply {
            status,
            error_type,
            body,
        })
    }

    async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        deadline: Duration,
    ) -> Result<Reply, EcsError> {
        let (status, _, body) = self.exchange(request, deadline).await?;
        Ok((status, body))
    }

    async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
        deadline: Duration,
    ) -> Result<(u16, http::HeaderMap, Bytes), EcsError> {
        let target = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            let response = self
                .inner
                .http
                .request(request)
                .await
                .map_err(|e| EcsError::Transport(format!("{target}: {e}")))?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| EcsError::Transport(format!("{target}: reading the body: {e}")))?
                .to_bytes();
            Ok((status, parts.headers, body))
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| EcsError::Transport(format!("{target}: no answer within {deadline:?}")))?
    }

    async fn credentials(&self) -> Result<Credentials, EcsError> {
        let mut cached = self.inner.cached.lock().await;
        if let Some(creds) = cached.as_ref()
            && creds.expiry().is_none_or(|expiry| {
                expiry
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_CREDENTIALS_BEFORE)
            })
        {
            return Ok(creds.clone());
        }
        let provider =
            self.inner.credentials.as_ref().ok_or_else(|| {
                EcsError::Credentials("no credentials provider configured".into())
            })?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| EcsError::Credentials(e.to_string()))?;
        *cached = Some(creds.clone());
        Ok(creds)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (what SigV4 and the
/// Query protocol expect).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` element in `xml` (entities decoded). A scan, not a
/// parser: enough for the flat, attribute-free elements of AWS Query responses.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_inner(xml, tag).map(unescape)
}

/// The raw inner markup of the first `<tag>…</tag>` element.
pub(crate) fn xml_inner<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded_like_sigv4_expects() {
        assert_eq!(percent_encode("Rill/Ingest"), "Rill%2FIngest");
        assert_eq!(percent_encode("a b+c~d"), "a%20b%2Bc~d");
        assert_eq!(percent_encode("0.75"), "0.75");
    }

    fn reply(status: u16, error_type: Option<&str>, body: &str) -> SignedReply {
        SignedReply {
            status,
            error_type: error_type.map(str::to_owned),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn json_error_codes_come_from_the_header_or_the_body_in_any_form() {
        let header = reply(
            404,
            Some(
                "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.chronos/",
            ),
            r#"{"Message":"Schedule x does not exist."}"#,
        );
        let EcsError::Api {
            code,
            message,
            status,
            ..
        } = json_error("DeleteSchedule", &header)
        else {
            panic!("not an API error");
        };
        assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
        assert_eq!(message, "Schedule x does not exist.");
        let body = reply(
            400,
            None,
            r#"{"__type":"com.amazonaws.ecs#ClientException","message":"bad"}"#,
        );
        let EcsError::Api { code, .. } = json_error("DescribeTasks", &body) else {
            panic!("not an API error");
        };
        assert_eq!(code, "ClientException");
    }

    #[test]
    fn xml_scan_finds_the_first_element_and_decodes_entities() {
        let xml = "<R><Error><Code>Throttling</Code><Message>a &amp; b &lt;c&gt;</Message>\
                   </Error><Code>second</Code></R>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("Throttling"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & b <c>"));
        assert_eq!(xml_text(xml, "Missing"), None);
    }
}
