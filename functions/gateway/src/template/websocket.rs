//! The WebSocket API of the template: the `AWS::ApiGatewayV2::Api` with `ProtocolType:
//! WEBSOCKET`, its stage, each route's chain Route -> Integration -> function, and the
//! `$connect` route's Lambda REQUEST authorizer (Route.AuthorizerId -> Authorizer ->
//! function).

use serde_yaml::{Mapping, Value};

use super::*;

/// An `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET` and its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketApi {
    pub logical_id: String,
    /// The JSON path of `RouteSelectionExpression: $request.body.<path>`, split on dots.
    pub selection_path: Vec<String>,
    /// `StageName` of the API's `AWS::ApiGatewayV2::Stage` (`requestContext.stage`);
    /// [`DEFAULT_WEBSOCKET_STAGE`] when the template declares none.
    pub stage: String,
    /// Sorted by route key.
    pub routes: Vec<WebSocketRoute>,
    /// The Lambda REQUEST authorizer of the `$connect` route (`AuthorizationType:
    /// CUSTOM`); `None` when `$connect` has no authorization (`NONE` or absent).
    pub connect_authorizer: Option<WebSocketAuthorizer>,
}

/// An `AWS::ApiGatewayV2::Authorizer` with `AuthorizerType: REQUEST`: a function that
/// decides each handshake before `$connect` runs, and whose `context` API Gateway hands
/// to every event of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketAuthorizer {
    /// Logical id of the `AWS::ApiGatewayV2::Authorizer`, for logs and error messages.
    pub logical_id: String,
    /// Function name (= binary name) of `AuthorizerUri`.
    pub function: String,
    /// `IdentitySource`: API Gateway refuses (401) a handshake missing any of these
    /// without invoking the function. Empty when the template gives none.
    pub identity_sources: Vec<IdentitySource>,
}

/// One entry of an authorizer's `IdentitySource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `route.request.header.<Name>`, the name lower-cased: header names are
    /// case-insensitive.
    Header(String),
    /// `route.request.querystring.<name>`: query parameter names are case-sensitive.
    QueryString(String),
}

impl std::fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header(name) => write!(f, "route.request.header.{name}"),
            Self::QueryString(name) => write!(f, "route.request.querystring.{name}"),
        }
    }
}

/// The stage name when the template has no `AWS::ApiGatewayV2::Stage` for the API.
pub const DEFAULT_WEBSOCKET_STAGE: &str = "live";

/// One route of the WebSocket API: `$connect`, `$disconnect`, `$default` or an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRoute {
    pub route_key: String,
    /// Function name (= binary name) the route's integration invokes.
    pub function: String,
    /// Logical id of the `AWS::ApiGatewayV2::Route`, for error messages.
    pub logical_id: String,
}

impl WebSocketApi {
    /// The function of a route, if the route exists.
    pub fn function_for(&self, route_key: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.route_key == route_key)
            .map(|r| r.function.as_str())
    }

    /// Every function the API invokes: its routes' and the `$connect` authorizer's.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .map(|r| r.function.as_str())
            .chain(self.connect_authorizer.iter().map(|a| a.function.as_str()))
    }
}

/// The WebSocket API and its routes; `None` when the template has no WebSocket API.
pub fn parse_websocket(
    resources: &Mapping,
    functions: &[FunctionSpec],
) -> Result<Option<WebSocketApi>, TemplateError> {
    let mut apis = resources.iter().filter(|(_, r)| {
        field(r, "Type").and_then(Value::as_str) == Some("AWS::ApiGatewayV2::Api")
            && property(r, "ProtocolType").and_then(Value::as_str) == Some("WEBSOCKET")
    });
    let Some((api_id, api)) = apis.next() else {
        return Ok(None);
    };
    let api_id = api_id.as_str().unwrap_or("<non-string id>").to_owned();
    if let Some((other, _)) = apis.next() {
        return Err(TemplateError::WebSocketApi(format!(
            "the gateway serves one WebSocket API; the template has {api_id} and {}",
            other.as_str().unwrap_or("<non-string id>")
        )));
    }
    let expression = property(api, "RouteSelectionExpression")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let selection_path: Vec<String> = match expression.strip_prefix("$request.body.") {
        Some(path) if !path.is_empty() && path.split('.').all(|s| !s.is_empty()) => {
            path.split('.').map(str::to_owned).collect()
        }
        _ => {
            return Err(TemplateError::WebSocketApi(format!(
                "{api_id}: RouteSelectionExpression {expression:?} is not $request.body.<field>"
            )));
        }
    };

    let mut routes: Vec<WebSocketRoute> = Vec::new();
    let mut connect_authorizer = None;
    for (id, resource) in resources {
        if field(resource, "Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or("<non-string id>").to_owned();
        match property(resource, "ApiId").and_then(reference) {
            Some(api) if api == api_id => {}
            // A route of another API (an HTTP API declared with ApiGatewayV2 resources) is
            // not ours to check.
            Some(api) if resource_type(resources, api) == Some("AWS::ApiGatewayV2::Api") => {
                continue;
            }
            _ => {
                return Err(TemplateError::WebSocketRoute {
                    route_key: property(resource, "RouteKey")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned(),
                    logical_id,
                    message: format!("ApiId is not !Ref {api_id} (or another API's)"),
                });
            }
        }
        let route_key = property(resource, "RouteKey")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| TemplateError::WebSocketRoute {
                route_key: "?".into(),
                logical_id: logical_id.clone(),
                message: "no literal RouteKey".into(),
            })?;
        let fail = |message: String| TemplateError::WebSocketRoute {
            route_key: route_key.clone(),
            logical_id: logical_id.clone(),
            message,
        };
        let function = route_function(resources, functions, resource).map_err(fail)?;
        if let Some(existing) = routes.iter().find(|r| r.route_key == route_key) {
            return Err(fail(format!("also declared by {}", existing.logical_id)));
        }
        if let Some(authorizer) =
            route_authorizer(resources, functions, &api_id, &route_key, resource).map_err(fail)?
        {
            connect_authorizer = Some(authorizer);
        }
        routes.push(WebSocketRoute {
            route_key,
            function,
            logical_id,
        });
    }
    routes.sort_by(|a, b| a.route_key.cmp(&b.route_key));
    let stage = resources
        .values()
        .filter(|r| field(r, "Type").and_then(Value::as_str) == Some("AWS::ApiGatewayV2::Stage"))
        .filter(|r| property(r, "ApiId").and_then(reference) == Some(api_id.as_str()))
        .find_map(|r| property(r, "StageName").and_then(Value::as_str))
        .unwrap_or(DEFAULT_WEBSOCKET_STAGE)
        .to_owned();
    Ok(Some(WebSocketApi {
        logical_id: api_id,
        selection_path,
        stage,
        routes,
        connect_authorizer,
    }))
}

/// Follows Route.Target → Integration.IntegrationUri → function name.
fn route_function(
    resources: &Mapping,
    functions: &[FunctionSpec],
    route: &Value,
) -> Result<String, String> {
    let target = property(route, "Target").ok_or("no Target")?;
    let integration =
        integration_target(target).ok_or("Target is not !Sub integrations/${<Integration>}")?;
    let integration_resource = resource_of_type(
        resources,
        integration,
        "Target",
        "AWS::ApiGatewayV2::Integration",
        "an integration",
    )?;
    match property(integration_resource, "IntegrationType").and_then(Value::as_str) {
        Some("AWS_PROXY") => {}
        other => {
            return Err(format!(
                "integration {integration} has IntegrationType {other:?}; the gateway serves \
                 AWS_PROXY (Lambda proxy) integrations only"
            ));
        }
    }
    let uri = property(integration_resource, "IntegrationUri")
        .and_then(sub_template)
        .ok_or_else(|| {
            format!(
                "integration {integration} has no IntegrationUri !Sub ...${{<Function>.Arn}}..."
            )
        })?;
    uri_function(resources, functions, uri)
        .map_err(|e| format!("IntegrationUri of {integration} {e}"))
}

/// The resource `id` that the property `field` names, which must be of type `kind`
/// (`noun` in the error).
fn resource_of_type<'a>(
    resources: &'a Mapping,
    id: &str,
    field: &str,
    kind: &str,
    noun: &str,
) -> Result<&'a Value, String> {
    match resource_type(resources, id) {
        Some(t) if t == kind => resources.get(id).ok_or_else(|| format!("no resource {id}")),
        Some(other) => Err(format!("{field} {id} is a {other}, not {noun}")),
        None => Err(format!("{field} names {id}, which is not in the template")),
    }
}

/// The function whose `${<Function>.Arn}` a Lambda invocation URI (`!Sub
/// arn:...:functions/${XFunction.Arn}/invocations`) names.
fn uri_function(
    resources: &Mapping,
    functions: &[FunctionSpec],
    uri: &str,
) -> Result<String, String> {
    let function_id = sub_references(uri)
        .into_iter()
        .filter_map(|r| r.strip_suffix(".Arn"))
        .find(|id| resource_type(resources, id) == Some("AWS::Serverless::Function"))
        .ok_or_else(|| format!("references no function's Arn (${{<Function>.Arn}}): {uri}"))?;
    functions
        .iter()
        .find(|f| f.logical_id == function_id)
        .map(|f| f.name.clone())
        .ok_or_else(|| format!("names function {function_id}, which was not parsed"))
}

/// The route's authorizer: `AuthorizationType: CUSTOM` + `AuthorizerId: !Ref X`, on
/// `$connect` only (API Gateway runs WebSocket authorizers at the handshake and nowhere
/// else). `NONE` or no `AuthorizationType` is no authorizer. `AWS_IAM` is refused: the
/// gateway cannot check SigV4-signed handshakes, and letting them through unchecked would
/// make a local run more permissive than the deployed API.
fn route_authorizer(
    resources: &Mapping,
    functions: &[FunctionSpec],
    api_id: &str,
    route_key: &str,
    route: &Value,
) -> Result<Option<WebSocketAuthorizer>, String> {
    let authorizer_id = property(route, "AuthorizerId");
    match property(route, "AuthorizationType").map(Value::as_str) {
        None | Some(Some("NONE")) => {
            // An authorizer the gateway would silently skip is a bug waiting to deploy.
            return match authorizer_id {
                Some(_) => Err("AuthorizerId is set but AuthorizationType is not CUSTOM".into()),
                None => Ok(None),
            };
        }
        Some(Some("CUSTOM")) => {}
        Some(Some("AWS_IAM")) => {
            return Err("AuthorizationType AWS_IAM: the gateway cannot emulate IAM \
                        authorization (SigV4-signed handshakes); use NONE or a Lambda REQUEST \
                        authorizer (CUSTOM)"
                .into());
        }
        Some(Some(other)) => {
            return Err(format!(
                "AuthorizationType {other:?} is not NONE, CUSTOM or AWS_IAM (WebSocket APIs \
                 have no JWT authorizers)"
            ));
        }
        Some(None) => return Err("AuthorizationType is not a literal".into()),
    }
    let id = reference(authorizer_id.ok_or("AuthorizationType CUSTOM without AuthorizerId")?)
        .ok_or("AuthorizerId is not !Ref <Authorizer>")?;
    let authorizer = resource_of_type(
        resources,
        id,
        "AuthorizerId",
        "AWS::ApiGatewayV2::Authorizer",
        "an AWS::ApiGatewayV2::Authorizer",
    )?;
    if route_key != "$connect" {
        return Err(format!(
            "authorizer {id}: API Gateway runs WebSocket authorizers on $connect only"
        ));
    }
    parse_authorizer(resources, functions, api_id, id, authorizer)
        .map(Some)
        .map_err(|e| format!("authorizer {id}: {e}"))
}

/// An `AWS::ApiGatewayV2::Authorizer` of the WebSocket API: a Lambda REQUEST authorizer.
fn parse_authorizer(
    resources: &Mapping,
    functions: &[FunctionSpec],
    api_id: &str,
    logical_id: &str,
    authorizer: &Value,
) -> Result<WebSocketAuthorizer, String> {
    if property(authorizer, "ApiId").and_then(reference) != Some(api_id) {
        return Err(format!("ApiId is not !Ref {api_id}"));
    }
    match property(authorizer, "AuthorizerType").and_then(Value::as_str) {
        Some("REQUEST") => {}
        other => {
            return Err(format!(
                "AuthorizerType {other:?}: a WebSocket API's authorizers are REQUEST (Lambda) \
                 authorizers"
            ));
        }
    }
    let uri = property(authorizer, "AuthorizerUri")
        .and_then(sub_template)
        .ok_or("no AuthorizerUri !Sub ...${<Function>.Arn}...")?;
    let function =
        uri_function(resources, functions, uri).map_err(|e| format!("AuthorizerUri {e}"))?;
    let identity_sources = match property(authorizer, "IdentitySource") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| "IdentitySource entries must be literal strings".to_owned())
                    .and_then(parse_identity_source)
            })
            .collect::<Result<_, _>>()?,
        // The API Gateway console's form: one comma-separated string.
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_identity_source)
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("IdentitySource is not a list of strings".into()),
    };
    Ok(WebSocketAuthorizer {
        logical_id: logical_id.to_owned(),
        function,
        identity_sources,
    })
}

/// `route.request.header.<Name>` or `route.request.querystring.<name>`; the other
/// sources API Gateway knows (`stageVariables.*`, `context.*`) are refused rather than
/// ignored, since ignoring one would let handshakes through that AWS refuses.
fn parse_identity_source(source: &str) -> Result<IdentitySource, String> {
    let named = |prefix: &str| source.strip_prefix(prefix).filter(|name| !name.is_empty());
    if let Some(name) = named("route.request.header.") {
        Ok(IdentitySource::Header(name.to_ascii_lowercase()))
    } else if let Some(name) = named("route.request.querystring.") {
        Ok(IdentitySource::QueryString(name.to_owned()))
    } else {
        Err(format!(
            "IdentitySource {source:?} is not supported: the gateway evaluates \
             route.request.header.<Name> and route.request.querystring.<name>"
        ))
    }
}

/// The integration's logical id in `!Sub integrations/${X}` or
/// `!Join ["/", [integrations, !Ref X]]`.
fn integration_target(target: &Value) -> Option<&str> {
    if let Some(text) = sub_template(target) {
        let rest = text.strip_prefix("integrations/")?;
        let refs = sub_references(rest);
        return match refs.as_slice() {
            [one] if rest == format!("${{{one}}}") => Some(one),
            _ => None,
        };
    }
    let args = intrinsic(target, "Join")?.as_sequence()?;
    let [Value::String(sep), Value::Sequence(parts)] = args.as_slice() else {
        return None;
    };
    match parts.as_slice() {
        [Value::String(prefix), id] if sep == "/" && prefix == "integrations" => reference(id),
        _ => None,
    }
}
