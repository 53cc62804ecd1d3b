//! The WebSocket API of the template: the `AWS::ApiGatewayV2::Api` with `ProtocolType:
//! WEBSOCKET`, its stage, and each route's chain Route -> Integration -> function.

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
    let integration_resource = match resource_type(resources, integration) {
        Some("AWS::ApiGatewayV2::Integration") => resources
            .get(integration)
            .ok_or_else(|| format!("no resource {integration}"))?,
        Some(other) => {
            return Err(format!(
                "Target {integration} is a {other}, not an integration"
            ));
        }
        None => {
            return Err(format!(
                "Target names {integration}, which is not in the template"
            ));
        }
    };
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
    let function_id = sub_references(uri)
        .into_iter()
        .filter_map(|r| r.strip_suffix(".Arn"))
        .find(|id| resource_type(resources, id) == Some("AWS::Serverless::Function"))
        .ok_or_else(|| {
            format!(
                "IntegrationUri of {integration} references no function's Arn \
                 (${{<Function>.Arn}}): {uri}"
            )
        })?;
    functions
        .iter()
        .find(|f| f.logical_id == function_id)
        .map(|f| f.name.clone())
        .ok_or_else(|| format!("function {function_id} was not parsed"))
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
