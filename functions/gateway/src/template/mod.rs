//! Reads the functions, their HTTP API routes, the WebSocket API routes and the DynamoDB
//! stream triggers from the AWS SAM template.
//!
//! `infra/template.yaml` is the single source of truth for "which binary answers which
//! route": the gateway never keeps a route table of its own, so what runs locally is what
//! deploys. Only the parts the gateway needs are read; CloudFormation intrinsic functions
//! (`!Ref`, `!Sub`, `!GetAtt`, ...) arrive as tagged values and are treated as "not a
//! literal", because resolving them needs a deployed stack. The exceptions are references
//! between resources of the template itself, which need no stack:
//!
//! - WebSocket routes ([`parse_websocket`]): `AWS::ApiGatewayV2::Route` (`RouteKey`,
//!   `Target: !Sub integrations/${Integration}`) → `AWS::ApiGatewayV2::Integration`
//!   (`IntegrationUri: !Sub arn:...:functions/${XFunction.Arn}/invocations`) → the function.
//!   A route of the WebSocket API whose chain does not resolve is an error naming the route:
//!   a silently missing route would only show up as frames going to `$default`.
//! - The `$connect` authorizer: `AuthorizationType: CUSTOM` + `AuthorizerId: !Ref X` →
//!   `AWS::ApiGatewayV2::Authorizer` (`AuthorizerType: REQUEST`, `AuthorizerUri: !Sub
//!   ...${XFunction.Arn}...`, `IdentitySource`) → the function. An authorization the
//!   gateway cannot honour (`AWS_IAM`, an authorizer off `$connect`, an unknown identity
//!   source) refuses the template rather than let handshakes through that AWS refuses.
//! - Stream triggers (`Type: DynamoDB` events): `Stream: !GetAtt Table.StreamArn` must name
//!   an `AWS::DynamoDB::Table` of the template (locally: the table `TABLE_NAME`).
//!
//! To support another event source, add a variant to [`FunctionEvent`] and a match arm in
//! [`parse_event`]; unknown event types are kept as [`FunctionEvent::Other`] rather than
//! rejected, so a template can grow ahead of the gateway.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use crate::filter::Filters;

mod websocket;
pub use websocket::{
    DEFAULT_WEBSOCKET_STAGE, IdentitySource, WebSocketApi, WebSocketAuthorizer, WebSocketRoute,
    parse_websocket,
};

/// Lambda's defaults when neither the function nor `Globals.Function` says otherwise.
const DEFAULT_TIMEOUT_SECS: u64 = 3;
const DEFAULT_MEMORY_MB: u32 = 128;

/// One `AWS::Serverless::Function` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// CloudFormation logical id (`StreamsGetFunction`), for error messages.
    pub logical_id: String,
    /// Function name = binary name = `src/bin/<name>.rs` (from
    /// `Metadata.BuildProperties.Binary`).
    pub name: String,
    /// HTTP API routes (`Type: HttpApi` events), in template order.
    pub routes: Vec<HttpRoute>,
    /// DynamoDB stream triggers (`Type: DynamoDB` events), in template order.
    pub stream_sources: Vec<StreamSource>,
    /// Events the gateway does not serve (yet), by their `Type`.
    pub other_events: Vec<String>,
    /// `Timeout` (seconds in the template).
    pub timeout: Duration,
    /// `MemorySize` in MB; only reported to the function, the gateway does not enforce it.
    pub memory_mb: u32,
    /// Literal `Environment.Variables`; values given by intrinsics are left out.
    pub environment: BTreeMap<String, String>,
}

/// One `Type: HttpApi` event: `Method` + `Path` in API Gateway syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path with `{param}` / `{proxy+}` segments, or `$default` for the catch-all route.
    pub path: String,
}

impl HttpRoute {
    /// The API Gateway route key, as it appears in `routeKey` of the event.
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            "$default".to_owned()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// Where a stream trigger reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    /// `!GetAtt <Table>.StreamArn` (or `.LatestStreamArn`): the stream of a table of the
    /// template, which locally is the table `TABLE_NAME`.
    Table(String),
    /// A literal stream ARN.
    Arn(String),
}

/// Where a new event source mapping starts reading a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    Latest,
    TrimHorizon,
}

/// One `Type: DynamoDB` event: an event source mapping from a table stream to the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    /// The event's key under `Events` (`TableStream`), for logs and stats.
    pub event_id: String,
    pub stream: StreamRef,
    pub starting_position: StartingPosition,
    /// `BatchSize`: Lambda's default is 100, its maximum 10,000.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`: default 0, maximum 300.
    pub max_batching_window: Duration,
    /// `MaximumRetryAttempts`: `None` = -1, Lambda's default: retry until the record
    /// expires.
    pub max_retry_attempts: Option<u32>,
    /// `BisectBatchOnFunctionError`: read for the logs; the gateway retries whole batches.
    pub bisect_on_error: bool,
    /// `Enabled` (default true).
    pub enabled: bool,
    /// `FilterCriteria`: the records the function gets (none given: all).
    pub filters: Filters,
}

/// An event source of a function, as declared under `Properties.Events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionEvent {
    HttpApi(HttpRoute),
    DynamoDb(StreamSource),
    Other(String),
}

/// Everything the gateway serves from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Every `AWS::Serverless::Function`, sorted by name.
    pub functions: Vec<FunctionSpec>,
    /// The WebSocket API, if the template has one.
    pub websocket: Option<WebSocketApi>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template has no Resources mapping")]
    NoResources,
    #[error("function {logical_id}: {message}")]
    Function { logical_id: String, message: String },
    #[error("function name {name} is used by both {first} and {second}")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("WebSocket API: {0}")]
    WebSocketApi(String),
    #[error("WebSocket route {route_key} ({logical_id}): {message}")]
    WebSocketRoute {
        route_key: String,
        logical_id: String,
        message: String,
    },
}

/// Loads the template file and returns its functions.
pub fn load_functions(path: &Path) -> Result<Vec<FunctionSpec>, TemplateError> {
    Ok(load_template(path)?.functions)
}

/// Loads the template file: functions and the WebSocket API.
pub fn load_template(path: &Path) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_template(&text)
}

/// Parses template text and returns every `AWS::Serverless::Function`, sorted by name.
pub fn parse_functions(text: &str) -> Result<Vec<FunctionSpec>, TemplateError> {
    Ok(parse_template(text)?.functions)
}

/// Parses template text: the functions, then the WebSocket API routes that point at them.
pub fn parse_template(text: &str) -> Result<Template, TemplateError> {
    let doc: Value = serde_yaml::from_str(text)?;
    let resources = field(&doc, "Resources")
        .and_then(Value::as_mapping)
        .ok_or(TemplateError::NoResources)?;
    let functions = collect_functions(&doc, resources)?;
    let websocket = parse_websocket(resources, &functions)?;
    Ok(Template {
        functions,
        websocket,
    })
}

fn collect_functions(doc: &Value, resources: &Mapping) -> Result<Vec<FunctionSpec>, TemplateError> {
    let globals = field(doc, "Globals").and_then(|g| field(g, "Function"));

    let mut functions: Vec<FunctionSpec> = Vec::new();
    for (id, resource) in resources {
        if field(resource, "Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or("<non-string id>").to_owned();
        let function = parse_function(&logical_id, resource, globals)?;
        for source in &function.stream_sources {
            if let StreamRef::Table(table) = &source.stream
                && resource_type(resources, table) != Some("AWS::DynamoDB::Table")
            {
                return Err(TemplateError::Function {
                    logical_id,
                    message: format!(
                        "event {}: Stream refers to {table}, which is not an AWS::DynamoDB::Table \
                         of this template",
                        source.event_id
                    ),
                });
            }
        }
        functions.push(function);
    }
    resolve_function_refs(globals, resources, &mut functions);
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in functions.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(TemplateError::DuplicateName {
                name: pair[0].name.clone(),
                first: pair[0].logical_id.clone(),
                second: pair[1].logical_id.clone(),
            });
        }
    }
    Ok(functions)
}

/// The local stand-in of the ARN of the function (binary) `name`: what the gateway's
/// Invoke API and Scheduler stand-in take (they use the name inside it).
pub fn local_function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
}

/// What a function's `Environment.Variables` names of the stack, resolved as locally
/// meaningful values (other intrinsics stay unresolved and are left out):
/// - `!Ref XFunction`: the other function's name (on AWS, `!Ref` of a function is its
///   name); locally its binary name, which is what the gateway's Invoke API serves;
/// - `!GetAtt XFunction.Arn`: [`local_function_arn`] of it;
/// - `!GetAtt XRole.Arn` of an `AWS::IAM::Role`: a local role ARN named by the logical id
///   (the local Scheduler stand-in ignores roles, as nothing local assumes them);
/// - `!Ref XGroup` of an `AWS::Scheduler::ScheduleGroup`: the logical id as the group name.
fn resolve_function_refs(
    globals: Option<&Value>,
    resources: &Mapping,
    functions: &mut [FunctionSpec],
) {
    let names: BTreeMap<String, String> = functions
        .iter()
        .map(|f| (f.logical_id.clone(), f.name.clone()))
        .collect();
    let kind_of = |id: &str| {
        resources
            .get(id)
            .and_then(|r| field(r, "Type"))
            .and_then(Value::as_str)
    };
    let resolve = |v: &Value| -> Option<String> {
        if let Some(id) = reference(v) {
            if let Some(name) = names.get(id) {
                return Some(name.clone());
            }
            return (kind_of(id) == Some("AWS::Scheduler::ScheduleGroup")).then(|| id.to_owned());
        }
        match get_att(v)? {
            (id, "Arn") => match names.get(id) {
                Some(name) => Some(local_function_arn(name)),
                None => (kind_of(id) == Some("AWS::IAM::Role"))
                    .then(|| format!("arn:aws:iam::000000000000:role/{id}")),
            },
            _ => None,
        }
    };
    let vars_of = |source: Option<&Value>| {
        source
            .and_then(|s| field(s, "Environment"))
            .and_then(|e| field(e, "Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    };
    for f in functions.iter_mut() {
        let props = resources
            .get(f.logical_id.as_str())
            .and_then(|r| field(r, "Properties"));
        for source in [globals, props] {
            for (k, v) in &vars_of(source) {
                if let (Some(k), Some(value)) = (k.as_str(), resolve(v)) {
                    f.environment.insert(k.to_owned(), value);
                }
            }
        }
    }
}

fn parse_function(
    logical_id: &str,
    resource: &Value,
    globals: Option<&Value>,
) -> Result<FunctionSpec, TemplateError> {
    let fail = |message: String| TemplateError::Function {
        logical_id: logical_id.to_owned(),
        message,
    };
    let name = field(resource, "Metadata")
        .and_then(|m| field(m, "BuildProperties"))
        .and_then(|b| field(b, "Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no literal Metadata.BuildProperties.Binary".to_owned()))?
        .to_owned();
    let props = field(resource, "Properties");
    let setting = |key: &str| {
        props
            .and_then(|p| field(p, key))
            .or_else(|| globals.and_then(|g| field(g, key)))
    };
    // An intrinsic (`!Ref TimeoutParam`) cannot be resolved without a stack: use Lambda's
    // default rather than refuse to start.
    let timeout_secs = match setting("Timeout") {
        None | Some(Value::Tagged(_)) => DEFAULT_TIMEOUT_SECS,
        Some(v) => as_u64(v).ok_or_else(|| fail("Timeout is not a number".to_owned()))?,
    };
    let memory_mb = match setting("MemorySize") {
        None | Some(Value::Tagged(_)) => DEFAULT_MEMORY_MB,
        Some(v) => as_u64(v)
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| fail("MemorySize is not a number".to_owned()))?,
    };

    // Globals first so the function's own variables override them, as SAM merges them.
    let mut environment = BTreeMap::new();
    for source in [globals, props] {
        let vars = source
            .and_then(|s| field(s, "Environment"))
            .and_then(|e| field(e, "Variables"))
            .and_then(Value::as_mapping);
        for (k, v) in vars.into_iter().flat_map(Mapping::iter) {
            if let (Some(k), Some(v)) = (k.as_str(), scalar_string(v)) {
                environment.insert(k.to_owned(), v);
            }
        }
    }

    let mut routes = Vec::new();
    let mut stream_sources = Vec::new();
    let mut other_events = Vec::new();
    let events = props
        .and_then(|p| field(p, "Events"))
        .and_then(Value::as_mapping);
    for (event_id, event) in events.into_iter().flat_map(Mapping::iter) {
        let event_id = event_id.as_str().unwrap_or("<non-string id>");
        match parse_event(event).map_err(|m| fail(format!("event {event_id}: {m}")))? {
            FunctionEvent::HttpApi(route) => routes.push(route),
            FunctionEvent::DynamoDb(mut source) => {
                event_id.clone_into(&mut source.event_id);
                stream_sources.push(source);
            }
            FunctionEvent::Other(kind) => other_events.push(kind),
        }
    }

    Ok(FunctionSpec {
        logical_id: logical_id.to_owned(),
        name,
        routes,
        stream_sources,
        other_events,
        timeout: Duration::from_secs(timeout_secs),
        memory_mb,
        environment,
    })
}

/// Parses one entry of `Properties.Events`.
pub fn parse_event(event: &Value) -> Result<FunctionEvent, String> {
    let kind = field(event, "Type")
        .and_then(Value::as_str)
        .ok_or("no literal Type")?;
    match kind {
        "HttpApi" => {
            let props = field(event, "Properties");
            let literal = |key: &str| -> Result<Option<String>, String> {
                match props.and_then(|p| field(p, key)) {
                    None => Ok(None),
                    Some(v) => v
                        .as_str()
                        .map(|s| Some(s.to_owned()))
                        .ok_or_else(|| format!("{key} is not a literal string")),
                }
            };
            // SAM: an HttpApi event without Method and Path is the API's $default route.
            let method = literal("Method")?
                .map(|m| normalise_method(&m))
                .unwrap_or_else(|| "ANY".to_owned());
            let path = literal("Path")?.unwrap_or_else(|| "$default".to_owned());
            if path != "$default" && !path.starts_with('/') {
                return Err(format!("Path {path:?} does not start with '/'"));
            }
            Ok(FunctionEvent::HttpApi(HttpRoute { method, path }))
        }
        "DynamoDB" => parse_dynamodb_event(field(event, "Properties")).map(FunctionEvent::DynamoDb),
        other => Ok(FunctionEvent::Other(other.to_owned())),
    }
}

/// `Type: DynamoDB` properties, with Lambda's defaults and limits. The caller fills in
/// `event_id`.
fn parse_dynamodb_event(props: Option<&Value>) -> Result<StreamSource, String> {
    let prop = |key: &str| props.and_then(|p| field(p, key));
    let stream = match prop("Stream") {
        None => return Err("no Stream".into()),
        Some(Value::String(arn)) => StreamRef::Arn(arn.clone()),
        Some(v) => match get_att(v) {
            Some((table, "StreamArn" | "LatestStreamArn")) => StreamRef::Table(table.to_owned()),
            _ => {
                return Err("Stream must be a literal ARN or !GetAtt <Table>.StreamArn".to_owned());
            }
        },
    };
    let starting_position = match prop("StartingPosition").and_then(Value::as_str) {
        Some("LATEST") => StartingPosition::Latest,
        Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
        Some(other) => return Err(format!("StartingPosition {other:?} is not supported")),
        None => return Err("no literal StartingPosition (LATEST or TRIM_HORIZON)".into()),
    };
    let number = |key: &str, default: u64, max: u64| -> Result<u64, String> {
        match prop(key) {
            None => Ok(default),
            Some(v) => match as_u64(v) {
                Some(n) if n <= max => Ok(n),
                _ => Err(format!("{key} is not a number from 0 to {max}")),
            },
        }
    };
    let batch_size = number("BatchSize", 100, 10_000)?.max(1);
    let window = number("MaximumBatchingWindowInSeconds", 0, 300)?;
    let max_retry_attempts = match prop("MaximumRetryAttempts") {
        None => None,
        Some(v) => match v {
            Value::Number(n) if n.as_i64() == Some(-1) => None,
            v => match as_u64(v) {
                Some(n) if n <= 10_000 => Some(u32::try_from(n).unwrap_or(10_000)),
                _ => return Err("MaximumRetryAttempts is not -1 or 0 to 10000".into()),
            },
        },
    };
    let flag = |key: &str, default: bool| match prop(key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    };
    Ok(StreamSource {
        event_id: String::new(),
        stream,
        starting_position,
        batch_size: usize::try_from(batch_size).unwrap_or(10_000),
        max_batching_window: Duration::from_secs(window),
        max_retry_attempts,
        bisect_on_error: flag("BisectBatchOnFunctionError", false),
        enabled: flag("Enabled", true),
        filters: match prop("FilterCriteria") {
            None => Filters::default(),
            Some(criteria) => serde_json::to_value(criteria)
                .map_err(|e| e.to_string())
                .and_then(|json| Filters::parse(&json))
                .map_err(|e| format!("FilterCriteria: {e}"))?,
        },
    })
}

/// The argument of a short-form (`!Name`) or long-form (`Fn::Name:` / `Ref:`) intrinsic.
fn intrinsic<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Value::Mapping(m) if m.len() == 1 => {
            let long = if name == "Ref" {
                "Ref".to_owned()
            } else {
                format!("Fn::{name}")
            };
            m.get(long.as_str())
        }
        _ => None,
    }
}

/// `!Ref X` → `X`.
fn reference(value: &Value) -> Option<&str> {
    intrinsic(value, "Ref").and_then(Value::as_str)
}

/// `!GetAtt X.Attr` or `!GetAtt [X, Attr]` → `(X, Attr)`.
fn get_att(value: &Value) -> Option<(&str, &str)> {
    match intrinsic(value, "GetAtt")? {
        Value::String(s) => s.split_once('.'),
        Value::Sequence(parts) => match parts.as_slice() {
            [Value::String(id), Value::String(attr)] => Some((id.as_str(), attr.as_str())),
            _ => None,
        },
        _ => None,
    }
}

/// The template string of `!Sub "..."` or `!Sub ["...", {vars}]`.
fn sub_template(value: &Value) -> Option<&str> {
    match intrinsic(value, "Sub")? {
        Value::String(s) => Some(s),
        Value::Sequence(parts) => parts.first().and_then(Value::as_str),
        _ => None,
    }
}

/// The `${...}` references of a `!Sub` template; `${!Literal}` is an escape, not a reference.
fn sub_references(text: &str) -> Vec<&str> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            refs.push(name.trim());
        }
        rest = &after[end + 1..];
    }
    refs
}

fn resource_type<'a>(resources: &'a Mapping, id: &str) -> Option<&'a str> {
    resources
        .get(id)
        .and_then(|r| field(r, "Type"))
        .and_then(Value::as_str)
}

fn property<'a>(resource: &'a Value, key: &str) -> Option<&'a Value> {
    field(resource, "Properties").and_then(|p| field(p, key))
}

fn normalise_method(method: &str) -> String {
    let upper = method.to_ascii_uppercase();
    if upper == "X-AMAZON-APIGATEWAY-ANY-METHOD" || upper == "*" {
        "ANY".to_owned()
    } else {
        upper
    }
}

/// Mapping lookup that does not look through tags: a tagged value is an intrinsic.
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
