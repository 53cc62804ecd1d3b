//! Who is calling, read one way on AWS and locally.
//!
//! On AWS an HTTP API JWT authorizer verifies the token and puts its claims in
//! `requestContext.authorizer.jwt.claims`; API Gateway never lets a client set that part of
//! the event. Where no authorizer ran (public routes, or the local gateway, which never sets
//! it), a `Authorization: Bearer` token is verified here as HS256 with `JWT_SECRET`.
//! Either way the result is a [`Principal`] from the claims `sub` and `name`.
//!
//! **Operators** (the fleet endpoints, e.g. `GET /api/nodes`) are recognised in exactly one
//! place, [`is_operator`]: a token is an operator's when its claim `rill:admin` is `true`,
//! or when its `cognito:groups` claim contains the group named by `OPERATOR_GROUP`
//! (default `rill-operators`, the Cognito user pool group to put operators in). Any other
//! signed-in caller is not an operator (403); no token is 401. Both claim shapes are read:
//! JSON (`true`, `["a","b"]`) from a token verified here, and the strings the HTTP API
//! authorizer flattens claims into (`"true"`, `"[a b]"`).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use rill_core::Principal;
use serde::Deserialize;

use crate::error::ApiError;

pub struct Auth {
    key: Option<DecodingKey>,
    validation: Validation,
    /// `cognito:groups` entry that makes a caller an operator ([`is_operator`]).
    operator_group: String,
}

/// Default of `OPERATOR_GROUP`.
pub const DEFAULT_OPERATOR_GROUP: &str = "rill-operators";

/// A signed-in caller and whether the operator rule holds for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub operator: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("hs256", &self.key.is_some())
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
    #[serde(rename = "rill:admin")]
    admin: Option<serde_json::Value>,
    #[serde(rename = "cognito:groups")]
    groups: Option<serde_json::Value>,
}

/// The operator rule, the only place it is decided (module docs). `admin` and `groups` are
/// the raw claims in either shape (JSON from a verified token, or the authorizer's strings).
pub fn is_operator(
    admin: Option<&serde_json::Value>,
    groups: Option<&serde_json::Value>,
    operator_group: &str,
) -> bool {
    use serde_json::Value;
    let admin = match admin {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let in_group = match groups {
        Some(Value::Array(items)) => items.iter().any(|g| g.as_str() == Some(operator_group)),
        // The authorizer renders a list as "[a b]"; a single group may come bare.
        Some(Value::String(s)) => s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split([' ', ','])
            .any(|g| g.trim_matches('"') == operator_group),
        _ => false,
    };
    admin || in_group
}

impl Auth {
    /// `JWT_SECRET` enables HS256 verification; `JWT_ISSUER` and `JWT_AUDIENCE`, when set,
    /// are checked too.
    pub fn from_env() -> Auth {
        let secret = std::env::var("JWT_SECRET").ok().filter(|s| !s.is_empty());
        let mut auth = Auth::new(
            secret.as_deref(),
            std::env::var("JWT_ISSUER").ok().as_deref(),
            std::env::var("JWT_AUDIENCE").ok().as_deref(),
        );
        if let Some(group) = std::env::var("OPERATOR_GROUP")
            .ok()
            .filter(|g| !g.trim().is_empty())
        {
            auth.operator_group = group.trim().to_owned();
        }
        auth
    }

    pub fn new(secret: Option<&str>, issuer: Option<&str>, audience: Option<&str>) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Clock skew between issuer and Lambda; tokens past it are refused.
        validation.leeway = 30;
        if let Some(iss) = issuer.filter(|s| !s.is_empty()) {
            validation.set_issuer(&[iss]);
        }
        match audience.filter(|s| !s.is_empty()) {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Auth {
            key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
            operator_group: DEFAULT_OPERATOR_GROUP.to_owned(),
        }
    }

    /// The caller, if any. A present but invalid token is an error, not anonymity.
    pub fn principal(&self, req: &Request) -> Result<Option<Principal>, ApiError> {
        Ok(self.caller(req)?.map(|c| c.principal))
    }

    /// The caller with the operator rule applied, if any.
    pub fn caller(&self, req: &Request) -> Result<Option<Caller>, ApiError> {
        if let RequestContext::ApiGatewayV2(ctx) = req.request_context()
            && let Some(claims) = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| &j.claims)
            && let Some(sub) = claims.get("sub").filter(|s| !s.is_empty())
        {
            let text = |k: &str| claims.get(k).cloned().map(serde_json::Value::String);
            return Ok(Some(Caller {
                principal: principal(sub.clone(), claims.get("name").cloned()),
                operator: is_operator(
                    text("rill:admin").as_ref(),
                    text("cognito:groups").as_ref(),
                    &self.operator_group,
                ),
            }));
        }
        let Some(header) = req.headers().get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized(
                "Authorization must be 'Bearer <token>'",
            ))?;
        self.verify_caller(token).map(Some)
    }

    /// Verifies a bare token (WebSocket clients pass it in the query string, since
    /// browsers cannot set headers on a WebSocket).
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        self.verify_caller(token).map(|c| c.principal)
    }

    fn verify_caller(&self, token: &str) -> Result<Caller, ApiError> {
        let key = self.key.as_ref().ok_or(ApiError::Unauthorized(
            "token verification is not configured",
        ))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))?;
        if data.claims.sub.is_empty() {
            return Err(ApiError::Unauthorized("token has no subject"));
        }
        let operator = is_operator(
            data.claims.admin.as_ref(),
            data.claims.groups.as_ref(),
            &self.operator_group,
        );
        Ok(Caller {
            principal: principal(data.claims.sub, data.claims.name),
            operator,
        })
    }

    /// The caller, who must be signed in.
    pub fn require(&self, req: &Request) -> Result<Principal, ApiError> {
        self.principal(req)?.ok_or(ApiError::Unauthorized(
            "sign in: Authorization: Bearer <token> required",
        ))
    }

    /// An operator: 401 without a (valid) token, 403 for anyone else ([`is_operator`]).
    pub fn require_operator(&self, req: &Request) -> Result<Principal, ApiError> {
        let caller = self.caller(req)?.ok_or(ApiError::Unauthorized(
            "sign in: Authorization: Bearer <token> required",
        ))?;
        if caller.operator {
            Ok(caller.principal)
        } else {
            Err(ApiError::forbidden(
                "not_operator",
                "only fleet operators may do this",
            ))
        }
    }
}

fn principal(sub: String, name: Option<String>) -> Principal {
    let display_name = name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| sub.clone());
    Principal {
        user_id: sub,
        display_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn token(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn request(auth: Option<&str>) -> Request {
        let mut headers = serde_json::Map::new();
        if let Some(a) = auth {
            headers.insert("authorization".into(), serde_json::json!(a));
        }
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "",
            "headers": headers,
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t", "timeEpoch": 0},
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("event")
    }

    #[test]
    fn authorizer_claims_are_read_the_same_way_without_a_secret() {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "", "headers": {},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "authorizer": {"jwt": {"claims": {"sub": "carol", "name": "Carol"}, "scopes": null}},
                "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t", "timeEpoch": 0},
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&event.to_string()).expect("event");
        let p = Auth::new(None, None, None)
            .require(&req)
            .expect("claims from the authorizer");
        assert_eq!(
            p,
            Principal {
                user_id: "carol".into(),
                display_name: "Carol".into()
            }
        );
    }

    fn exp() -> i64 {
        chrono::Utc::now().timestamp() + 600
    }

    #[test]
    fn a_valid_token_names_the_caller() {
        let auth = Auth::new(Some("s3cret"), None, None);
        let t = token(
            "s3cret",
            serde_json::json!({"sub": "alice", "name": "Alice", "exp": exp()}),
        );
        let p = auth
            .require(&request(Some(&format!("Bearer {t}"))))
            .expect("ok");
        assert_eq!(
            p,
            Principal {
                user_id: "alice".into(),
                display_name: "Alice".into()
            }
        );
    }

    #[test]
    fn no_token_is_anonymous_but_required_routes_refuse() {
        let auth = Auth::new(Some("s3cret"), None, None);
        assert_eq!(auth.principal(&request(None)).expect("ok"), None);
        assert_eq!(auth.require(&request(None)).unwrap_err().status(), 401);
    }

    #[test]
    fn bad_tokens_are_401() {
        let auth = Auth::new(Some("s3cret"), None, None);
        let wrong_secret = token("other", serde_json::json!({"sub": "a", "exp": exp()}));
        let expired = token("s3cret", serde_json::json!({"sub": "a", "exp": 1000}));
        let no_sub = token("s3cret", serde_json::json!({"exp": exp()}));
        for h in [
            format!("Bearer {wrong_secret}"),
            format!("Bearer {expired}"),
            format!("Bearer {no_sub}"),
            "Bearer garbage".into(),
            "Basic dXNlcjpwYXNz".into(),
        ] {
            assert_eq!(
                auth.principal(&request(Some(&h))).unwrap_err().status(),
                401,
                "{h}"
            );
        }
    }

    #[test]
    fn operators_are_recognised_by_the_admin_claim_or_the_operator_group() {
        let auth = Auth::new(Some("s"), None, None);
        let with = |claims: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "op", "exp": exp()});
            c.as_object_mut()
                .expect("object")
                .extend(claims.as_object().expect("object").clone());
            request(Some(&format!("Bearer {}", token("s", c))))
        };
        for ok in [
            serde_json::json!({"rill:admin": true}),
            serde_json::json!({"cognito:groups": ["viewers", DEFAULT_OPERATOR_GROUP]}),
        ] {
            assert!(auth.require_operator(&with(ok.clone())).is_ok(), "{ok}");
        }
        for refused in [
            serde_json::json!({}),
            serde_json::json!({"rill:admin": false}),
            serde_json::json!({"rill:admin": "yes"}),
            serde_json::json!({"cognito:groups": ["rill-operators-not"]}),
        ] {
            let e = auth.require_operator(&with(refused.clone())).unwrap_err();
            assert_eq!((e.status(), e.code()), (403, "not_operator"), "{refused}");
        }
        assert_eq!(
            auth.require_operator(&request(None)).unwrap_err().status(),
            401
        );
    }

    #[test]
    fn the_authorizer_string_forms_of_the_operator_claims_count() {
        use serde_json::json;
        let g = DEFAULT_OPERATOR_GROUP;
        assert!(is_operator(Some(&json!("true")), None, g));
        assert!(is_operator(None, Some(&json!(format!("[viewers {g}]"))), g));
        assert!(is_operator(None, Some(&json!(g)), g));
        assert!(!is_operator(
            Some(&json!("false")),
            Some(&json!("[viewers]")),
            g
        ));
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let auth = Auth::new(Some("s"), Some("rill"), Some("api"));
        let good = token(
            "s",
            serde_json::json!({"sub": "a", "exp": exp(), "iss": "rill", "aud": "api"}),
        );
        let bad = token(
            "s",
            serde_json::json!({"sub": "a", "exp": exp(), "iss": "evil", "aud": "api"}),
        );
        assert!(
            auth.require(&request(Some(&format!("Bearer {good}"))))
                .is_ok()
        );
        assert!(
            auth.require(&request(Some(&format!("Bearer {bad}"))))
                .is_err()
        );
    }
}
