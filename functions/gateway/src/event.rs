//! API Gateway HTTP API payload v2.0: request event out, function response in.
//!
//! The event is what `lambda_http` (feature `apigw_http`) parses on AWS, so the functions
//! cannot tell the gateway from API Gateway. `requestContext.authorizer` is never set: the
//! functions verify Bearer tokens themselves, and nothing a client sends may turn into
//! claims.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{COOKIE, HOST, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use serde_json::{Map, Value, json};

use crate::routes::RouteMatch;

/// Everything the gateway knows about one client request.
#[derive(Debug)]
pub struct EventInput<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: IpAddr,
    /// Port the gateway listens on, for `x-forwarded-port`.
    pub local_port: u16,
    pub route: &'a RouteMatch,
    pub request_id: &'a str,
    pub now: DateTime<Utc>,
}

/// Builds the payload v2.0 event for an HTTP API Lambda integration.
pub fn build_event(input: &EventInput<'_>) -> Value {
    let raw_path = input.uri.path();
    let raw_query = input.uri.query().unwrap_or("");

    // API Gateway moves cookies out of the headers into `cookies`.
    let cookies: Vec<String> = input
        .headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();

    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for name in input.headers.keys() {
        if name == COOKIE {
            continue;
        }
        let joined = input
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        headers.insert(name.as_str().to_owned(), joined);
    }
    // Like API Gateway: the client address is appended, the scheme and port are the
    // gateway's own.
    let xff = match headers.get("x-forwarded-for") {
        Some(prev) => format!("{prev}, {}", input.source_ip),
        None => input.source_ip.to_string(),
    };
    headers.insert("x-forwarded-for".into(), xff);
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-forwarded-port".into(), input.local_port.to_string());

    let host = input
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("127.0.0.1:{}", input.local_port));
    let domain_prefix = host
        .split(':')
        .next()
        .and_then(|h| h.split('.').next())
        .unwrap_or_default()
        .to_owned();
    let user_agent = input
        .headers
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(input.route.route_key));
    event.insert("rawPath".into(), json!(raw_path));
    event.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    let query = query_parameters(raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    if !input.route.path_parameters.is_empty() {
        event.insert("pathParameters".into(), json!(input.route.path_parameters));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": domain_prefix,
            "http": {
                "method": input.method.as_str(),
                "path": raw_path,
                "protocol": protocol(input.version),
                "sourceIp": input.source_ip.to_string(),
                "userAgent": user_agent,
            },
            "requestId": input.request_id,
            "routeKey": input.route.route_key,
            "stage": "$default",
            "time": input.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": input.now.timestamp_millis(),
        }),
    );
    let is_base64 = match std::str::from_utf8(input.body) {
        _ if input.body.is_empty() => false,
        Ok(text) => {
            event.insert("body".into(), json!(text));
            false
        }
        Err(_) => {
            event.insert("body".into(), json!(BASE64.encode(input.body)));
            true
        }
    };
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// `queryStringParameters`: decoded, repeated keys joined with commas as API Gateway does.
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k), form_decode(v));
        out.entry(k)
            .and_modify(|prev| {
                prev.push(',');
                prev.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    urlencoding::decode(&spaced)
        .map(|d| d.into_owned())
        .unwrap_or(spaced)
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A function's answer, ready to become an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Parses a buffered v2.0 response (`statusCode`, `headers`, `multiValueHeaders`,
/// `cookies`, `body`, `isBase64Encoded`). Anything else is the function's bug: the
/// caller answers 502, as API Gateway does for a malformed integration response.
pub fn parse_response(payload: &[u8]) -> Result<FunctionResponse, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("response is not JSON: {e}"))?;
    let obj = value.as_object().ok_or("response is not a JSON object")?;
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) => {
            if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                Bytes::from(
                    BASE64
                        .decode(s)
                        .map_err(|e| format!("body is not valid base64: {e}"))?,
                )
            } else {
                Bytes::from(s.clone())
            }
        }
        Some(_) => return Err("body is not a string".into()),
    };
    parse_metadata(obj, body)
}

/// Parses the metadata of a response (the whole buffered response, or the prelude of a
/// streamed one) and attaches `body`.
pub fn parse_metadata(obj: &Map<String, Value>, body: Bytes) -> Result<FunctionResponse, String> {
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("statusCode is missing or not a valid HTTP status")?;

    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &Value| -> Result<(), String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("header {name} has a non-scalar value")),
            };
            let v = HeaderValue::from_str(&text)
                .map_err(|_| format!("header {name} has an invalid value"))?;
            headers.append(&name, v);
        }
        Ok(())
    };
    let multi = obj.get("multiValueHeaders").and_then(Value::as_object);
    if let Some(single) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in single {
            // A name in multiValueHeaders carries all its values there.
            if multi.is_some_and(|m| m.keys().any(|mk| mk.eq_ignore_ascii_case(k))) {
                continue;
            }
            add(k, v)?;
        }
    }
    for (k, v) in multi.into_iter().flatten() {
        add(k, v)?;
    }
    if let Some(cookies) = obj.get("cookies").and_then(Value::as_array) {
        for cookie in cookies {
            let text = cookie.as_str().ok_or("cookies must be strings")?;
            let v = HeaderValue::from_str(text).map_err(|_| "invalid cookie value")?;
            headers.append(SET_COOKIE, v);
        }
    }
    Ok(FunctionResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lambda_http::RequestExt as _;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
    use lambda_http::aws_lambda_events::encodings::Body as LambdaBody;

    use super::*;

    fn input_with<'a>(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        body: &'a [u8],
        route: &'a RouteMatch,
    ) -> EventInput<'a> {
        EventInput {
            method,
            uri,
            version: Version::HTTP_11,
            headers,
            body,
            source_ip: "127.0.0.1".parse().expect("ip"),
            local_port: 3000,
            route,
            request_id: "req-1",
            now: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
        }
    }

    fn start_route() -> RouteMatch {
        RouteMatch {
            function: "streams-start".into(),
            route_key: "POST /api/streams/{id}/start".into(),
            path_parameters: HashMap::from([("id".to_owned(), "s1".to_owned())]),
        }
    }

    #[test]
    fn event_parses_with_lambda_http_as_an_http_api_request() {
        let method = Method::POST;
        let uri: Uri = "/api/streams/s1/start?a=1&b=x%20y&a=2"
            .parse()
            .expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.insert(COOKIE, HeaderValue::from_static("a=1; b=2"));
        let route = start_route();
        let event = build_event(&input_with(&method, &uri, &headers, b"{\"k\":1}", &route));

        assert_eq!(event["routeKey"], "POST /api/streams/{id}/start");
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["queryStringParameters"]["a"], "1,2");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert!(event["headers"].get("cookie").is_none());
        assert!(event["requestContext"].get("authorizer").is_none());

        let text = serde_json::to_string(&event).expect("serialise");
        let req = lambda_http::request::from_str(&text).expect("lambda_http parses the event");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/api/streams/s1/start");
        assert_eq!(req.uri().scheme_str(), Some("http"));
        assert_eq!(req.headers()["authorization"], "Bearer t");
        assert_eq!(req.headers()[COOKIE], "a=1; b=2");
        assert_eq!(req.path_parameters().first("id"), Some("s1"));
        assert_eq!(req.query_string_parameters().all("a"), Some(vec!["1", "2"]));
        assert_eq!(req.query_string_parameters().first("b"), Some("x y"));
        assert_eq!(req.body().as_ref(), b"{\"k\":1}");
        match req.request_context() {
            lambda_http::request::RequestContext::ApiGatewayV2(ctx) => {
                assert_eq!(
                    ctx.route_key.as_deref(),
                    Some("POST /api/streams/{id}/start")
                );
                assert_eq!(ctx.http.source_ip.as_deref(), Some("127.0.0.1"));
                assert!(ctx.authorizer.is_none());
            }
            other => panic!("not an HTTP API context: {other:?}"),
        }
    }

    #[test]
    fn event_carries_binary_body_as_base64() {
        let method = Method::POST;
        let uri: Uri = "/x".parse().expect("uri");
        let headers = HeaderMap::new();
        let route = start_route();
        let body = [0xff_u8, 0x00, 0xfe];
        let event = build_event(&input_with(&method, &uri, &headers, &body, &route));
        assert_eq!(event["isBase64Encoded"], true);
        let text = serde_json::to_string(&event).expect("serialise");
        let req = lambda_http::request::from_str(&text).expect("parses");
        assert_eq!(req.body().as_ref(), &body);
    }

    #[test]
    fn event_without_body_or_query_omits_them() {
        let method = Method::GET;
        let uri: Uri = "/x".parse().expect("uri");
        let headers = HeaderMap::new();
        let route = RouteMatch {
            function: "f".into(),
            route_key: "GET /x".into(),
            path_parameters: HashMap::new(),
        };
        let event = build_event(&input_with(&method, &uri, &headers, b"", &route));
        assert!(event.get("body").is_none());
        assert!(event.get("queryStringParameters").is_none());
        assert!(event.get("pathParameters").is_none());
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(
            event["requestContext"]["time"],
            "14/Nov/2023:22:13:20 +0000"
        );
        let text = serde_json::to_string(&event).expect("serialise");
        lambda_http::request::from_str(&text).expect("parses");
    }

    #[test]
    fn response_from_lambda_http_round_trips() {
        let mut resp = ApiGatewayV2httpResponse::default();
        resp.status_code = 201;
        resp.headers
            .insert("content-type", HeaderValue::from_static("application/json"));
        resp.cookies = vec!["s=1; HttpOnly".into()];
        resp.body = Some(LambdaBody::Text("{\"ok\":true}".into()));
        let payload = serde_json::to_vec(&resp).expect("serialise");
        let parsed = parse_response(&payload).expect("valid response");
        assert_eq!(parsed.status, StatusCode::CREATED);
        assert_eq!(parsed.headers["content-type"], "application/json");
        assert_eq!(parsed.headers[SET_COOKIE], "s=1; HttpOnly");
        assert_eq!(parsed.body, Bytes::from_static(b"{\"ok\":true}"));

        resp.body = Some(LambdaBody::Binary(vec![1, 2, 255]));
        resp.is_base64_encoded = true;
        let payload = serde_json::to_vec(&resp).expect("serialise");
        let parsed = parse_response(&payload).expect("valid response");
        assert_eq!(parsed.body.as_ref(), &[1, 2, 255]);
    }

    #[test]
    fn response_multi_value_headers_are_all_kept() {
        let payload = br#"{"statusCode":200,"headers":{"x-a":"1","Vary":"x"},
            "multiValueHeaders":{"vary":["origin","accept"]}}"#;
        let parsed = parse_response(payload).expect("valid");
        assert_eq!(parsed.headers["x-a"], "1");
        let vary: Vec<_> = parsed.headers.get_all("vary").iter().collect();
        assert_eq!(vary, ["origin", "accept"]);
    }

    #[test]
    fn invalid_responses_are_rejected() {
        for bad in [
            &b"not json"[..],
            b"[1]",
            b"{\"body\":\"x\"}",
            b"{\"statusCode\":99}",
            b"{\"statusCode\":200,\"body\":\"%%\",\"isBase64Encoded\":true}",
            b"{\"statusCode\":200,\"headers\":{\"bad name\":\"x\"}}",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
