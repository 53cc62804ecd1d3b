//! Who is calling, read one way on AWS and locally.
//!
//! On AWS the HTTP API's JWT authorizer verifies the token on the write routes and puts its
//! claims in `requestContext.authorizer.jwt.claims`; API Gateway never lets a client set
//! that part of the event, so those claims are taken as they are (never verified twice).
//! Elsewhere (public routes that read the caller when there is one, the WebSocket
//! `$connect` whose token comes in the query string, the local gateway, which never runs an
//! authorizer) a bearer token is verified here:
//!
//! - **RS256/ES256 (and the other asymmetric algorithms) against `JWKS_URL`**, the
//!   identity provider's key set ([`jwks`]: cached for the warm instance, refetched on an
//!   unknown `kid`). `JWT_ISSUER` and `JWT_AUDIENCE` are then required: `iss` must equal
//!   the issuer; `aud` must contain the audience, or `client_id` must equal it (Cognito
//!   access tokens carry the app client in `client_id`, ID tokens in `aud`).
//! - **HS256 with `JWT_SECRET`**, for development and LocalStack (issuer and audience are
//!   checked when set).
//!
//! Either may be configured, or both. With neither, or with a JWKS URL but no issuer or
//! audience, every token is refused with 401 (fail closed) and the reason is logged once at
//! start. `exp` and `sub` are required; 30 s of clock leeway. The result is a
//! [`Principal`] from `sub` and the first display name the token has (`name`,
//! `preferred_username`, `cognito:username`, `username`; else `sub`).
//!
//! **Operators** (the fleet endpoints, e.g. `GET /api/nodes`) are recognised in exactly one
//! place, [`is_operator`]: a token is an operator's when its claim `rill:admin` is `true`,
//! or when its `cognito:groups` claim contains the group named by `OPERATOR_GROUP`
//! (default `rill-operators`, the Cognito user pool group to put operators in). Any other
//! signed-in caller is not an operator (403); no token is 401. Both claim shapes are read:
//! JSON (`true`, `["a","b"]`) from a token verified here, and the strings the HTTP API
//! authorizer flattens claims into (`"true"`, `"[a b]"`).

pub mod jwks;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use rill_core::Principal;
use serde::Deserialize;

use crate::error::ApiError;
use jwks::{KeyError, KeySet};

/// Clock skew allowed between the issuer and us, in seconds.
pub const LEEWAY_SECS: u64 = 30;

pub struct Auth {
    hs256: Option<DecodingKey>,
    jwks: Option<KeySet>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Why no token can be verified, when that is so (logged once, answered as 401).
    unusable: Option<String>,
    /// `cognito:groups` entry that makes a caller an operator ([`is_operator`]).
    operator_group: String,
}

/// Default of `OPERATOR_GROUP`.
pub const DEFAULT_OPERATOR_GROUP: &str = "rill-operators";

/// How tokens are verified ([`Auth::new`]); every field optional, as in the environment.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub secret: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub operator_group: Option<String>,
}

impl AuthConfig {
    /// `JWT_SECRET`, `JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`, `OPERATOR_GROUP`; empty is unset.
    pub fn from_env() -> AuthConfig {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        AuthConfig {
            secret: var("JWT_SECRET"),
            jwks_url: var("JWKS_URL"),
            issuer: var("JWT_ISSUER"),
            audience: var("JWT_AUDIENCE"),
            operator_group: var("OPERATOR_GROUP"),
        }
    }
}

/// A signed-in caller and whether the operator rule holds for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub operator: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("unusable", &self.unusable)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
    preferred_username: Option<String>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
    aud: Option<serde_json::Value>,
    client_id: Option<String>,
    #[serde(rename = "rill:admin")]
    admin: Option<serde_json::Value>,
    #[serde(rename = "cognito:groups")]
    groups: Option<serde_json::Value>,
}

impl Claims {
    fn display_name(&self) -> Option<String> {
        [
            &self.name,
            &self.preferred_username,
            &self.cognito_username,
            &self.username,
        ]
        .into_iter()
        .flatten()
        .find(|n| !n.trim().is_empty())
        .cloned()
    }

    /// `aud` (a string or a list) contains `audience`, or `client_id` equals it.
    fn has_audience(&self, audience: &str) -> bool {
        let in_aud = match &self.aud {
            Some(serde_json::Value::String(a)) => a == audience,
            Some(serde_json::Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(audience))
            }
            _ => false,
        };
        in_aud || self.client_id.as_deref() == Some(audience)
    }
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

const INVALID: ApiError = ApiError::Unauthorized("invalid or expired token");

impl Auth {
    /// From the environment ([`AuthConfig::from_env`]); a configuration that cannot verify
    /// anything is logged here, once.
    pub fn from_env() -> Auth {
        let auth = Auth::new(AuthConfig::from_env());
        if let Some(why) = &auth.unusable {
            tracing::error!(reason = %why, "no bearer token can be verified: every one is refused with 401");
        }
        auth
    }

    pub fn new(config: AuthConfig) -> Auth {
        let mut unusable = None;
        let jwks = match config.jwks_url.as_deref() {
            None => None,
            Some(_) if config.issuer.is_none() || config.audience.is_none() => {
                unusable = Some("JWKS_URL is set without JWT_ISSUER and JWT_AUDIENCE".to_owned());
                None
            }
            Some(url) => match KeySet::new(url) {
                Ok(set) => Some(set),
                Err(e) => {
                    unusable = Some(e);
                    None
                }
            },
        };
        let hs256 = config
            .secret
            .as_deref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        if unusable.is_none() && jwks.is_none() && hs256.is_none() {
            unusable = Some("token verification is not configured".to_owned());
        }
        Auth {
            hs256,
            jwks,
            issuer: config.issuer,
            audience: config.audience,
            unusable,
            operator_group: config
                .operator_group
                .unwrap_or_else(|| DEFAULT_OPERATOR_GROUP.to_owned()),
        }
    }

    /// The caller, if any. A present but invalid token is an error, not anonymity.
    pub async fn principal(&self, req: &Request) -> Result<Option<Principal>, ApiError> {
        Ok(self.caller(req).await?.map(|c| c.principal))
    }

    /// The caller with the operator rule applied, if any.
    pub async fn caller(&self, req: &Request) -> Result<Option<Caller>, ApiError> {
        if let RequestContext::ApiGatewayV2(ctx) = req.request_context()
            && let Some(claims) = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| &j.claims)
            && let Some(sub) = claims.get("sub").filter(|s| !s.is_empty())
        {
            let text = |k: &str| claims.get(k).cloned().map(serde_json::Value::String);
            let name = ["name", "preferred_username", "cognito:username", "username"]
                .iter()
                .find_map(|k| claims.get(*k).filter(|n| !n.trim().is_empty()))
                .cloned();
            return Ok(Some(Caller {
                principal: principal(sub.clone(), name),
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
        self.verify_caller(token).await.map(Some)
    }

    /// Verifies a bare token (WebSocket clients pass it in the query string, since
    /// browsers cannot set headers on a WebSocket).
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        self.verify_caller(token).await.map(|c| c.principal)
    }

    async fn verify_caller(&self, token: &str) -> Result<Caller, ApiError> {
        if self.unusable.is_some() {
            return Err(ApiError::Unauthorized(
                "token verification is not configured",
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (
                self.hs256
                    .clone()
                    .ok_or(ApiError::Unauthorized("HS256 tokens are not accepted here"))?,
                Algorithm::HS256,
            ),
            Algorithm::HS384 | Algorithm::HS512 => {
                return Err(ApiError::Unauthorized("unsupported token algorithm"));
            }
            alg => {
                let set = self.jwks.as_ref().ok_or(ApiError::Unauthorized(
                    "only HS256 tokens are accepted here",
                ))?;
                let kid = header.kid.as_deref().ok_or(INVALID)?;
                let key = set.key(kid).await.map_err(|e| match e {
                    KeyError::UnknownKid => INVALID,
                    KeyError::Unreachable(why) => {
                        tracing::error!(error = %why, "cannot verify tokens: JWKS unreachable");
                        ApiError::Unavailable {
                            code: "identity_provider_unreachable",
                            message: "the identity provider's keys could not be read; try again"
                                .into(),
                            retry_after_secs: 5,
                        }
                    }
                })?;
                // The key decides the algorithm, never the token (module docs of `jwks`).
                if key.alg != alg {
                    return Err(INVALID);
                }
                (key.decoding, alg)
            }
        };
        let mut validation = Validation::new(alg);
        // `iss` must be present when an issuer is configured (jsonwebtoken only compares it
        // when present).
        if self.issuer.is_some() {
            validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        } else {
            validation.set_required_spec_claims(&["exp", "sub"]);
        }
        validation.leeway = LEEWAY_SECS;
        // Checked below, where `client_id` counts too.
        validation.validate_aud = false;
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|_| INVALID)?;
        let claims = data.claims;
        if let Some(aud) = &self.audience
            && !claims.has_audience(aud)
        {
            return Err(INVALID);
        }
        if claims.sub.is_empty() {
            return Err(ApiError::Unauthorized("token has no subject"));
        }
        let operator = is_operator(
            claims.admin.as_ref(),
            claims.groups.as_ref(),
            &self.operator_group,
        );
        let name = claims.display_name();
        Ok(Caller {
            principal: principal(claims.sub, name),
            operator,
        })
    }

    /// The caller, who must be signed in.
    pub async fn require(&self, req: &Request) -> Result<Principal, ApiError> {
        self.principal(req).await?.ok_or(ApiError::Unauthorized(
            "sign in: Authorization: Bearer <token> required",
        ))
    }

    /// An operator: 401 without a (valid) token, 403 for anyone else ([`is_operator`]).
    pub async fn require_operator(&self, req: &Request) -> Result<Principal, ApiError> {
        let caller = self.caller(req).await?.ok_or(ApiError::Unauthorized(
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
mod tests;
