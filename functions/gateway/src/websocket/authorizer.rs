//! The `$connect` route's Lambda REQUEST authorizer, run as API Gateway runs it for a
//! WebSocket API.
//!
//! 1. A handshake missing any of the authorizer's identity sources (an absent or empty
//!    header or query parameter) is refused with 401 `{"message":"Unauthorized"}`; the
//!    function is not invoked.
//! 2. The function gets [`crate::websocket_event::authorizer_event`] and answers
//!    `{principalId, policyDocument, context}` (an `ApiGatewayCustomAuthorizerResponse`).
//! 3. [`verdict`] decides: allowed iff an `Allow` statement covers `execute-api:Invoke` on
//!    the method ARN and no `Deny` statement does (IAM's `*`/`?` wildcards, an explicit
//!    deny wins). Denied: 403 `{"message":"Forbidden"}`. The function failing with the
//!    message `Unauthorized` (API Gateway's convention): 401. Anything else (another
//!    error, a timeout, an answer that is not a policy, a `context` value that is not a
//!    string, number or boolean): 500 `{"message":"Internal server error"}`, the reason
//!    logged at warn since the client learns nothing.
//! 4. Allowed: `principalId`, `integrationLatency` and the `context` keys become
//!    `requestContext.authorizer` of every event of the connection. They come from the
//!    function's answer only: the gateway adds nothing a client sent.
//!
//! WebSocket authorizers have no result cache on AWS, so every handshake invokes the
//! function.

use std::time::Instant;

use axum::response::{IntoResponse as _, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::Hub;
use crate::pool::{InvokeError, Outcome};
use crate::template::{IdentitySource, WebSocketAuthorizer};
use crate::websocket_event as wse;

/// What an authorizer's invocation means for the handshake.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The policy allows the handshake; `context` is the answer's, checked flat.
    Allow {
        principal_id: String,
        context: Map<String, Value>,
    },
    /// The policy does not allow `execute-api:Invoke` on the method ARN, or denies it: 403.
    Forbidden,
    /// The function failed with the message `Unauthorized`: 401.
    Unauthorized,
    /// The authorizer is broken (the reason is for the log): 500.
    Error(String),
}

impl Verdict {
    fn status(&self) -> StatusCode {
        match self {
            Self::Allow { .. } => StatusCode::OK,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Error(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// API Gateway's refusal of a handshake: the status and its `{"message": ...}` body.
pub(crate) fn refusal(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "Internal server error",
    };
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// The first identity source the handshake lacks (absent or empty), if any. The query
/// parameter's value is the last one, as in `queryStringParameters`.
pub(crate) fn missing_identity<'a>(
    sources: &'a [IdentitySource],
    headers: &HeaderMap,
    raw_query: &str,
) -> Option<&'a IdentitySource> {
    let query = wse::query_parameters(raw_query);
    sources.iter().find(|source| match source {
        IdentitySource::Header(name) => !headers
            .get_all(name.as_str())
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().is_empty()),
        IdentitySource::QueryString(name) => query
            .get(name)
            .and_then(|values| values.last())
            .is_none_or(String::is_empty),
    })
}

/// What the invocation's outcome means for the handshake to `method_arn`.
pub(crate) fn verdict(outcome: Result<Outcome, InvokeError>, method_arn: &str) -> Verdict {
    match outcome {
        Ok(Outcome::Response(answer)) => {
            evaluate_answer(&answer, method_arn).unwrap_or_else(Verdict::Error)
        }
        // Exactly this message: any other error is a broken authorizer (500), not a "no".
        Ok(Outcome::Error { message, .. }) if message == "Unauthorized" => Verdict::Unauthorized,
        Ok(Outcome::Error {
            error_type,
            message,
        }) => Verdict::Error(format!("function error {error_type}: {message}")),
        Ok(Outcome::Streamed { .. }) => {
            Verdict::Error("a streamed response is not an authorizer answer".into())
        }
        Err(e) => Verdict::Error(e.to_string()),
    }
}

/// Reads an authorizer's answer: `Ok(Allow | Forbidden)`, or why it is not a valid one.
pub(crate) fn evaluate_answer(answer: &[u8], method_arn: &str) -> Result<Verdict, String> {
    let answer: Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let principal_id = answer
        .get("principalId")
        .and_then(Value::as_str)
        .ok_or("the answer has no principalId string")?
        .to_owned();
    let context = match answer.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context.clone(),
        Some(_) => return Err("context is not an object".into()),
    };
    // AWS refuses the whole answer (500) for a nested value, even when the policy denies.
    if let Some((key, _)) = context
        .iter()
        .find(|(_, v)| !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
    {
        return Err(format!(
            "context value of {key:?} is not a string, number or boolean"
        ));
    }
    let policy = answer
        .get("policyDocument")
        .ok_or("the answer has no policyDocument")?;
    Ok(if policy_allows(policy, method_arn)? {
        Verdict::Allow {
            principal_id,
            context,
        }
    } else {
        Verdict::Forbidden
    })
}

/// Whether the policy allows `execute-api:Invoke` on `method_arn`: some `Allow` statement
/// covers it and no `Deny` statement does.
fn policy_allows(policy: &Value, method_arn: &str) -> Result<bool, String> {
    let statements: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err("policyDocument has no Statement list".into()),
    };
    let mut allowed = false;
    for (i, statement) in statements.into_iter().enumerate() {
        let strings = |key: &str| {
            string_or_list(statement.get(key))
                .ok_or_else(|| format!("Statement {i}: {key} is not a string or list of strings"))
        };
        let (actions, resources) = (strings("Action")?, strings("Resource")?);
        // Action names are case-insensitive in IAM; resource ARNs are not.
        let covers = actions
            .iter()
            .any(|a| wildcard_match(&a.to_ascii_lowercase(), "execute-api:invoke"))
            && resources.iter().any(|r| wildcard_match(r, method_arn));
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => allowed |= covers,
            Some("Deny") if covers => return Ok(false),
            Some("Deny") => {}
            other => {
                return Err(format!(
                    "Statement {i}: Effect {other:?} is not Allow or Deny"
                ));
            }
        }
    }
    Ok(allowed)
}

fn string_or_list(value: Option<&Value>) -> Option<Vec<&str>> {
    match value? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(list) => list.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` any one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and where in `text` it was tried, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `requestContext.authorizer` of an allowed connection: the answer's `context` keys,
/// `principalId` and `integrationLatency` (what the gateway measured wins over a context
/// key of the same name, so the function cannot fake it).
pub(crate) fn authorizer_context(
    principal_id: String,
    integration_latency_ms: u64,
    context: Map<String, Value>,
) -> Map<String, Value> {
    let mut out = context;
    out.insert("principalId".into(), Value::String(principal_id));
    out.insert("integrationLatency".into(), json!(integration_latency_ms));
    out
}

impl Hub {
    /// Invokes the authorizer with `event`: `Ok` with `requestContext.authorizer` for an
    /// allowed handshake, `Err` with API Gateway's refusal.
    pub(super) async fn authorize(
        &self,
        authorizer: &WebSocketAuthorizer,
        event: &Value,
        connection_id: &str,
    ) -> Result<Map<String, Value>, Box<Response>> {
        let method_arn = wse::connect_method_arn(&self.api.stage);
        let started = Instant::now();
        let outcome = self.invoke(&authorizer.function, event).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let verdict = verdict(outcome, &method_arn);
        let status = verdict.status();
        let (function, logical_id) = (&authorizer.function, &authorizer.logical_id);
        match verdict {
            Verdict::Allow {
                principal_id,
                context,
            } => return Ok(authorizer_context(principal_id, latency_ms, context)),
            Verdict::Error(reason) => {
                warn!(function, authorizer = %logical_id, connection_id, %reason,
                      "authorizer failed; handshake refused (500)");
            }
            Verdict::Forbidden | Verdict::Unauthorized => {
                info!(function, authorizer = %logical_id, connection_id,
                      status = status.as_u16(), "authorizer refused the handshake");
            }
        }
        Err(Box::new(refusal(status)))
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::apigw::{
        ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
    };
    use bytes::Bytes;
    use http::HeaderValue;

    use super::*;

    const ARN: &str = "arn:aws:execute-api:local:000000000000:local/live/$connect";

    fn statement(effect: &str, action: Value, resource: Value) -> Value {
        json!({"Effect": effect, "Action": action, "Resource": resource})
    }

    fn answer(statements: Vec<Value>, context: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": context,
        }))
        .expect("json")
    }

    fn judge(statements: Vec<Value>) -> Verdict {
        verdict(
            Ok(Outcome::Response(Bytes::from(answer(
                statements,
                json!({}),
            )))),
            ARN,
        )
    }

    fn allow(resource: Value) -> Value {
        statement("Allow", json!("execute-api:Invoke"), resource)
    }

    #[test]
    fn an_allow_statement_on_the_method_arn_admits_with_the_context() {
        let v = verdict(
            Ok(Outcome::Response(Bytes::from(answer(
                vec![allow(json!(ARN))],
                json!({"streamId": "s1", "n": 7, "counted": true}),
            )))),
            ARN,
        );
        let Verdict::Allow {
            principal_id,
            context,
        } = v
        else {
            panic!("not allowed: {v:?}");
        };
        assert_eq!(principal_id, "user-1");
        assert_eq!(
            Value::Object(context),
            json!({"streamId": "s1", "n": 7, "counted": true})
        );
    }

    #[test]
    fn the_aws_lambda_events_response_type_is_understood() {
        // What a Rust authorizer serialises; `Effect` defaults to Allow there.
        let mut response = ApiGatewayCustomAuthorizerResponse::<Value>::default();
        response.principal_id = Some("p".into());
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".into());
        policy.statement =
            vec![serde_json::from_value(allow(json!(["arn:other", ARN]))).expect("statement")];
        response.policy_document = policy;
        response.context = json!({"k": "v"});
        let bytes = serde_json::to_vec(&response).expect("json");
        assert!(matches!(
            evaluate_answer(&bytes, ARN),
            Ok(Verdict::Allow { .. })
        ));
    }

    #[test]
    fn a_policy_that_does_not_cover_the_method_arn_forbids() {
        assert_eq!(
            judge(vec![statement(
                "Deny",
                json!("execute-api:Invoke"),
                json!(ARN)
            )]),
            Verdict::Forbidden
        );
        assert_eq!(
            judge(vec![allow(json!(
                "arn:aws:execute-api:local:000000000000:local/other/$connect"
            ))]),
            Verdict::Forbidden
        );
        assert_eq!(
            judge(vec![statement("Allow", json!("s3:GetObject"), json!("*"))]),
            Verdict::Forbidden
        );
        assert_eq!(judge(vec![]), Verdict::Forbidden, "no statement: no allow");
    }

    #[test]
    fn resources_and_actions_match_with_iam_wildcards() {
        for resource in [
            json!("*"),
            json!("arn:aws:execute-api:*:*:local/live/*"),
            json!("arn:aws:execute-api:local:000000000000:local/*"),
            json!("arn:aws:execute-api:local:000000000000:local/l?ve/$connect"),
            json!(["arn:nope", "arn:aws:execute-api:*:*:*/*/$connect"]),
        ] {
            assert!(
                matches!(judge(vec![allow(resource.clone())]), Verdict::Allow { .. }),
                "{resource}"
            );
        }
        for action in [
            json!("*"),
            json!("execute-api:*"),
            json!(["EXECUTE-API:invoke"]),
        ] {
            assert!(
                matches!(
                    judge(vec![statement("Allow", action.clone(), json!(ARN))]),
                    Verdict::Allow { .. }
                ),
                "{action}"
            );
        }
        assert_eq!(
            judge(vec![allow(json!(
                "arn:aws:execute-api:local:000000000000:local/live/$con"
            ))]),
            Verdict::Forbidden,
            "no implicit prefix match"
        );
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(wildcard_match("a*", "a"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("a*b", "acbd"));
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        assert_eq!(
            judge(vec![
                allow(json!("*")),
                statement("Deny", json!("execute-api:Invoke"), json!(ARN)),
            ]),
            Verdict::Forbidden
        );
        // A deny for another resource changes nothing.
        assert!(matches!(
            judge(vec![
                statement("Deny", json!("execute-api:Invoke"), json!("arn:other")),
                allow(json!("*")),
            ]),
            Verdict::Allow { .. }
        ));
    }

    #[test]
    fn a_context_value_that_is_not_a_scalar_is_an_authorizer_error() {
        for context in [
            json!({"claims": {"sub": "x"}}),
            json!({"roles": ["a"]}),
            json!({"x": null}),
        ] {
            let v = evaluate_answer(&answer(vec![allow(json!("*"))], context.clone()), ARN);
            assert!(
                matches!(&v, Err(reason) if reason.contains("not a string, number or boolean")),
                "{context}: {v:?}"
            );
        }
        // Even with a policy that denies: the answer as a whole is invalid.
        let denied = answer(
            vec![statement("Deny", json!("*"), json!("*"))],
            json!({"nested": {"a": 1}}),
        );
        assert!(evaluate_answer(&denied, ARN).is_err());
    }

    #[test]
    fn answers_that_are_not_policies_are_authorizer_errors() {
        for bad in [
            b"not json".to_vec(),
            br#"{"policyDocument": {"Statement": []}}"#.to_vec(),
            br#"{"principalId": "p"}"#.to_vec(),
            br#"{"principalId": "p", "policyDocument": {}}"#.to_vec(),
            br#"{"principalId": "p", "policyDocument": {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}}"#.to_vec(),
            br#"{"principalId": "p", "policyDocument": {"Statement": [{"Effect": "Allow", "Resource": "*"}]}}"#.to_vec(),
            br#"{"principalId": "p", "context": "x", "policyDocument": {"Statement": []}}"#.to_vec(),
        ] {
            let v = verdict(Ok(Outcome::Response(Bytes::from(bad.clone()))), ARN);
            assert!(
                matches!(v, Verdict::Error(_)),
                "{}: {v:?}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    #[test]
    fn only_an_unauthorized_error_means_401() {
        let error = |message: &str| {
            verdict(
                Ok(Outcome::Error {
                    error_type: "&str".into(),
                    message: message.into(),
                }),
                ARN,
            )
        };
        assert_eq!(error("Unauthorized"), Verdict::Unauthorized);
        assert!(matches!(error("unauthorized"), Verdict::Error(_)));
        assert!(matches!(error("boom"), Verdict::Error(_)));
        let timeout = verdict(
            Err(InvokeError::Timeout(std::time::Duration::from_secs(3))),
            ARN,
        );
        assert!(matches!(timeout, Verdict::Error(_)));
        assert_eq!(Verdict::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Verdict::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            Verdict::Error(String::new()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn the_gateway_measured_fields_win_over_context_keys() {
        let context = json!({"principalId": "forged", "integrationLatency": 0, "k": 1});
        let map = authorizer_context(
            "real".into(),
            12,
            context.as_object().cloned().expect("object"),
        );
        assert_eq!(
            Value::Object(map),
            json!({"principalId": "real", "integrationLatency": 12, "k": 1})
        );
    }

    #[test]
    fn a_missing_or_empty_identity_source_is_found_before_any_invocation() {
        let sources = [
            IdentitySource::Header("host".into()),
            IdentitySource::QueryString("token".into()),
        ];
        let mut headers = HeaderMap::new();
        headers.insert("Host", HeaderValue::from_static("127.0.0.1:3000"));
        assert_eq!(missing_identity(&sources, &headers, "token=a.b"), None);
        assert_eq!(
            missing_identity(&sources, &headers, "other=1"),
            Some(&sources[1])
        );
        assert_eq!(
            missing_identity(&sources, &headers, "token="),
            Some(&sources[1]),
            "empty is missing"
        );
        assert_eq!(
            missing_identity(&sources, &HeaderMap::new(), "token=a"),
            Some(&sources[0])
        );
        headers.insert("host", HeaderValue::from_static(" "));
        assert_eq!(
            missing_identity(&sources, &headers, "token=a"),
            Some(&sources[0])
        );
        assert_eq!(missing_identity(&[], &HeaderMap::new(), ""), None);
    }

    #[test]
    fn refusals_have_api_gateway_bodies() {
        for (status, message) in [
            (StatusCode::UNAUTHORIZED, "Unauthorized"),
            (StatusCode::FORBIDDEN, "Forbidden"),
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        ] {
            let response = refusal(status);
            assert_eq!(response.status(), status);
            let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
                response.into_body(),
                1024,
            ))
            .expect("ready")
            .expect("body");
            assert_eq!(
                serde_json::from_slice::<Value>(&body).expect("json"),
                json!({ "message": message })
            );
        }
    }
}
