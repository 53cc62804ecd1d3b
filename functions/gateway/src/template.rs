//! Reads the functions and their HTTP API routes from the AWS SAM template.
//!
//! `infra/template.yaml` is the single source of truth for "which binary answers which
//! route": the gateway never keeps a route table of its own, so what runs locally is what
//! deploys. Only the parts the gateway needs are read; CloudFormation intrinsic functions
//! (`!Ref`, `!Sub`, `!GetAtt`, ...) arrive as tagged values and are treated as "not a
//! literal", because resolving them needs a deployed stack.
//!
//! To support another event source (WebSocket routes, stream triggers, ...), add a variant
//! to [`FunctionEvent`] and a match arm in [`parse_event`]; unknown event types are kept as
//! [`FunctionEvent::Other`] rather than rejected, so a template can grow ahead of the gateway.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

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

/// An event source of a function, as declared under `Properties.Events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionEvent {
    HttpApi(HttpRoute),
    Other(String),
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
}

/// Loads the template file and returns its functions.
pub fn load_functions(path: &Path) -> Result<Vec<FunctionSpec>, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_functions(&text)
}

/// Parses template text and returns every `AWS::Serverless::Function`, sorted by name.
pub fn parse_functions(text: &str) -> Result<Vec<FunctionSpec>, TemplateError> {
    let doc: Value = serde_yaml::from_str(text)?;
    let globals = field(&doc, "Globals").and_then(|g| field(g, "Function"));
    let resources = field(&doc, "Resources")
        .and_then(Value::as_mapping)
        .ok_or(TemplateError::NoResources)?;

    let mut functions: Vec<FunctionSpec> = Vec::new();
    for (id, resource) in resources {
        if field(resource, "Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or("<non-string id>").to_owned();
        functions.push(parse_function(&logical_id, resource, globals)?);
    }
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
    let mut other_events = Vec::new();
    let events = props
        .and_then(|p| field(p, "Events"))
        .and_then(Value::as_mapping);
    for (event_id, event) in events.into_iter().flat_map(Mapping::iter) {
        let event_id = event_id.as_str().unwrap_or("<non-string id>");
        match parse_event(event).map_err(|m| fail(format!("event {event_id}: {m}")))? {
            FunctionEvent::HttpApi(route) => routes.push(route),
            FunctionEvent::Other(kind) => other_events.push(kind),
        }
    }

    Ok(FunctionSpec {
        logical_id: logical_id.to_owned(),
        name,
        routes,
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
        other => Ok(FunctionEvent::Other(other.to_owned())),
    }
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
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        RUST_LOG: info
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
  Table:
    Type: AWS::DynamoDB::Table
  StreamsGetFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: streams-get
    Properties:
      CodeUri: .
      Handler: bootstrap
      Environment:
        Variables:
          RUST_LOG: debug
      Events:
        Get:
          Type: HttpApi
          Properties:
            Method: get
            Path: /api/streams/{id}
            ApiId: !Ref HttpApi
  StreamsListFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: streams-list
    Properties:
      Timeout: 5
      MemorySize: 128
      Events:
        Live:
          Type: HttpApi
          Properties: { Method: GET, Path: /api/streams/live, ApiId: !Ref HttpApi }
        Past:
          Type: HttpApi
          Properties: { Method: GET, Path: /api/streams/past, ApiId: !Ref HttpApi }
        Later:
          Type: WebSocket
"#;

    #[test]
    fn template_functions_come_with_routes_timeout_and_memory() {
        let functions = parse_functions(TEMPLATE).expect("template parses");
        let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["streams-get", "streams-list"]);

        let get = &functions[0];
        assert_eq!(get.logical_id, "StreamsGetFunction");
        assert_eq!(
            get.routes,
            [HttpRoute {
                method: "GET".into(),
                path: "/api/streams/{id}".into()
            }]
        );
        assert_eq!(get.timeout, Duration::from_secs(10), "from Globals");
        assert_eq!(get.memory_mb, 256, "from Globals");

        let list = &functions[1];
        assert_eq!(
            list.timeout,
            Duration::from_secs(5),
            "function overrides Globals"
        );
        assert_eq!(list.memory_mb, 128);
        assert_eq!(list.routes.len(), 2);
        assert_eq!(list.routes[1].route_key(), "GET /api/streams/past");
        assert_eq!(list.other_events, ["WebSocket"]);
    }

    #[test]
    fn template_environment_keeps_literals_and_function_overrides_globals() {
        let functions = parse_functions(TEMPLATE).expect("template parses");
        let get = &functions[0];
        assert_eq!(
            get.environment.get("RUST_LOG").map(String::as_str),
            Some("debug")
        );
        assert!(
            !get.environment.contains_key("TABLE_NAME"),
            "!Ref is not a literal"
        );
        assert_eq!(
            functions[1].environment.get("RUST_LOG").map(String::as_str),
            Some("info")
        );
    }

    #[test]
    fn template_function_without_binary_is_an_error() {
        let text = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
        let err = parse_functions(text).expect_err("no Binary");
        assert!(err.to_string().contains("Binary"), "{err}");
    }

    #[test]
    fn template_http_event_without_path_is_the_default_route() {
        let event: Value =
            serde_yaml::from_str("Type: HttpApi\nProperties:\n  ApiId: !Ref HttpApi\n")
                .expect("yaml");
        let FunctionEvent::HttpApi(route) = parse_event(&event).expect("parses") else {
            panic!("not an HttpApi event");
        };
        assert_eq!(route.route_key(), "$default");
    }

    #[test]
    fn template_duplicate_binary_names_are_rejected() {
        let text = r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: same } }
  B:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: same } }
"#;
        assert!(matches!(
            parse_functions(text),
            Err(TemplateError::DuplicateName { .. })
        ));
    }
}
