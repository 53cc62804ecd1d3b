//! `ws-authorize`, the WebSocket API's `$connect` authorizer, and the context it hands to
//! every later event of the connection.
//!
//! API Gateway calls the authorizer before `$connect` and passes the `context` of its
//! answer as `requestContext.authorizer` of every event of that connection: `$connect`,
//! each frame's route and `$disconnect`. So a socket is judged once, and no socket route
//! reads its connection back: `$disconnect` is one write, a reaction one write.
//!
//! Invariants:
//! - An [`Admission`] is only ever read from `requestContext.authorizer`, which API Gateway
//!   fills from this function's answer alone (locally the gateway does the same); nothing a
//!   client sends can become one. A socket event without one is not a registered socket.
//! - The authorizer allows every handshake it can judge, refusals included: a refusal (bad
//!   token, no such stream, banned) travels in the context and `$connect` answers it with
//!   its status and JSON body, as REST would. An authorizer alone could only answer 401 or
//!   403 with API Gateway's own body. Failing to judge (storage down) fails the invocation:
//!   API Gateway answers 500.
//! - Context values are strings (API Gateway passes only strings, numbers and booleans);
//!   reading accepts any of the three.
//! - What it fixes at `$connect` (the user, the stream, counted or not) holds for the life
//!   of the socket, as the connection item did before. Standing that can change (a ban, a
//!   revoked membership) is still checked by the routes that need it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use rill_core::realtime::Connection;
use rill_core::stream::Visibility;
use rill_core::{Principal, StreamStatus, ids};
use serde_json::{Map, Value, json};

use crate::{ApiError, App};

/// What the authorizer decided about a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A viewer of a stream, or its broadcaster's own page (`counted: false`).
    Stream {
        stream_id: String,
        user: Option<Principal>,
        counted: bool,
    },
    /// A signed-in user's notifications socket (no `streamId`).
    Notifications { user: Principal },
    /// `$connect` refuses the handshake with this status and error body.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl Admission {
    fn refused(e: &ApiError) -> Self {
        Admission::Refused {
            status: e.status(),
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }

    /// The authorizer's `context`.
    pub fn to_context(&self) -> Map<String, Value> {
        let mut ctx = Map::new();
        let mut put = |k: &str, v: &str| {
            ctx.insert(k.to_owned(), Value::String(v.to_owned()));
        };
        match self {
            Admission::Stream {
                stream_id,
                user,
                counted,
            } => {
                put("admission", "stream");
                put("streamId", stream_id);
                put("counted", if *counted { "true" } else { "false" });
                if let Some(user) = user {
                    put("userId", &user.user_id);
                    put("displayName", &user.display_name);
                }
            }
            Admission::Notifications { user } => {
                put("admission", "notifications");
                put("userId", &user.user_id);
                put("displayName", &user.display_name);
            }
            Admission::Refused {
                status,
                code,
                message,
            } => {
                put("admission", "refused");
                put("status", &status.to_string());
                put("code", code);
                put("message", message);
            }
        }
        ctx
    }

    /// The admission in an event's `requestContext.authorizer`; `None` when there is none
    /// or it is not one of ours.
    pub fn from_context(fields: &HashMap<String, Value>) -> Option<Self> {
        let text = |k: &str| -> Option<String> {
            match fields.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let user = || -> Option<Principal> {
            Some(Principal {
                user_id: text("userId")?,
                display_name: text("displayName")?,
            })
        };
        match text("admission")?.as_str() {
            "stream" => Some(Admission::Stream {
                stream_id: text("streamId")?,
                user: user(),
                counted: text("counted")? == "true",
            }),
            "notifications" => Some(Admission::Notifications { user: user()? }),
            "refused" => Some(Admission::Refused {
                status: text("status")?.parse().ok()?,
                code: text("code")?,
                message: text("message")?,
            }),
            _ => None,
        }
    }

    /// `principalId` of the answer: the user, or `anonymous`.
    fn principal_id(&self) -> &str {
        match self {
            Admission::Stream { user: Some(u), .. } | Admission::Notifications { user: u } => {
                &u.user_id
            }
            _ => "anonymous",
        }
    }
}

/// The admission of a socket event, from its authorizer context.
pub fn admission_of(req: &crate::ws::WsRequest) -> Option<Admission> {
    Admission::from_context(&req.request_context.authorizer.fields)
}

/// The stream connection a socket event comes from, as `$connect` registered it (country
/// and user agent, for analytics, are only on `$connect`'s own event).
pub fn connection_of(req: &crate::ws::WsRequest) -> Option<Connection> {
    let Admission::Stream {
        stream_id,
        user,
        counted,
    } = admission_of(req)?
    else {
        return None;
    };
    let ctx = &req.request_context;
    Some(Connection {
        connection_id: ctx.connection_id.clone()?,
        stream_id,
        display_name: user.as_ref().map(|u| u.display_name.clone()),
        user_id: user.map(|u| u.user_id),
        connected_at: chrono::DateTime::from_timestamp_millis(ctx.connected_at)?,
        counted,
        country: None,
        user_agent: None,
    })
}

/// `ws-authorize`: judges a handshake (`?streamId=...&token=...`, or a Bearer header) and
/// answers API Gateway's policy with the [`Admission`] as context. Anonymous viewers may
/// connect (they watch and are counted); a token that is present must be valid; banned
/// users are refused; without `streamId`, a signed-in user's notifications socket.
/// Storage: none for a cached stream and an anonymous viewer; the standing of a signed-in
/// user not seen in the last 2 s.
pub async fn authorize(app: Arc<App>, event: Value) -> Result<Value, ApiError> {
    let req: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(event)
        .map_err(|e| ApiError::Internal(format!("not an authorizer request: {e}")))?;
    let admission = decide(&app, &req).await?;
    let method_arn = req.method_arn.clone().unwrap_or_else(|| "*".into());
    Ok(json!({
        "principalId": admission.principal_id(),
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": method_arn,
            }],
        },
        "context": admission.to_context(),
    }))
}

async fn decide(
    app: &App,
    req: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<Admission, ApiError> {
    let query = |name: &str| req.query_string_parameters.first(name).map(str::to_owned);
    let token = query("token").or_else(|| {
        req.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    });
    let user = match token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match app.auth.verify(t).await {
            Ok(user) => Some(user),
            Err(e) => return Ok(Admission::refused(&e)),
        },
    };
    let Some(stream_id) = query("streamId") else {
        return Ok(match user {
            Some(user) => Admission::Notifications { user },
            None => Admission::refused(&ApiError::InvalidQuery(
                "streamId is required (or a token, for a notifications socket)".into(),
            )),
        });
    };
    let not_found = || Admission::refused(&ApiError::NotFound("stream"));
    if !ids::is_valid_id(&stream_id) {
        return Ok(not_found());
    }
    let Some(stream) = app.stream_cached(&stream_id).await? else {
        return Ok(not_found());
    };
    if stream.status == StreamStatus::Cancelled {
        return Ok(Admission::refused(&ApiError::conflict(
            "stream_over",
            "the stream was cancelled",
        )));
    }
    if let Some(u) = &user {
        let standing = app.standing_cached(&stream, &u.user_id).await?;
        if !standing.views(&stream) {
            return Ok(not_found());
        }
        if standing.is_banned {
            return Ok(Admission::refused(&ApiError::forbidden(
                "banned",
                "you are banned from this stream",
            )));
        }
    } else if stream.visibility == Visibility::Members {
        // Members-only: to an anonymous socket it does not exist, as over REST.
        return Ok(not_found());
    }
    Ok(Admission::Stream {
        stream_id,
        counted: user.as_ref().is_none_or(|u| u.user_id != stream.owner_id),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(ctx: Map<String, Value>) -> HashMap<String, Value> {
        ctx.into_iter().collect()
    }

    fn ann() -> Principal {
        Principal {
            user_id: "ann".into(),
            display_name: "Ann".into(),
        }
    }

    #[test]
    fn every_admission_survives_the_context_round_trip() {
        for admission in [
            Admission::Stream {
                stream_id: "s1".into(),
                user: Some(ann()),
                counted: false,
            },
            Admission::Stream {
                stream_id: "s1".into(),
                user: None,
                counted: true,
            },
            Admission::Notifications { user: ann() },
            Admission::Refused {
                status: 403,
                code: "banned".into(),
                message: "you are banned from this stream".into(),
            },
        ] {
            let ctx = admission.to_context();
            assert!(ctx.values().all(Value::is_string), "{ctx:?}");
            assert_eq!(Admission::from_context(&fields(ctx)), Some(admission));
        }
    }

    #[test]
    fn context_values_api_gateway_did_not_keep_as_strings_still_read() {
        let ctx = HashMap::from([
            ("admission".to_owned(), json!("refused")),
            ("status".to_owned(), json!(404)),
            ("code".to_owned(), json!("not_found")),
            ("message".to_owned(), json!("stream not found")),
        ]);
        assert!(matches!(
            Admission::from_context(&ctx),
            Some(Admission::Refused { status: 404, .. })
        ));
        let stream = HashMap::from([
            ("admission".to_owned(), json!("stream")),
            ("streamId".to_owned(), json!("s")),
            ("counted".to_owned(), json!(true)),
        ]);
        assert!(matches!(
            Admission::from_context(&stream),
            Some(Admission::Stream {
                counted: true,
                user: None,
                ..
            })
        ));
    }

    #[test]
    fn a_context_that_is_not_an_admission_is_none() {
        assert_eq!(Admission::from_context(&HashMap::new()), None);
        let other = HashMap::from([("admission".to_owned(), json!("root"))]);
        assert_eq!(Admission::from_context(&other), None);
        let incomplete = HashMap::from([("admission".to_owned(), json!("stream"))]);
        assert_eq!(Admission::from_context(&incomplete), None);
    }
}
