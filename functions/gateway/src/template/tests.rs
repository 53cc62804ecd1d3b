//! Template parsing against small templates and the repository's own.

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
fn a_ref_to_another_function_in_the_environment_is_its_local_name() {
    let text = "Resources:
  CallerFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: caller } }
    Properties:
      Environment:
        Variables:
          WORKER: !Ref WorkerFunction
          TABLE: !Ref Table
  WorkerFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
";
    let functions = parse_functions(text).expect("template parses");
    let caller = functions
        .iter()
        .find(|f| f.name == "caller")
        .expect("caller");
    assert_eq!(
        caller.environment.get("WORKER").map(String::as_str),
        Some("worker")
    );
    assert!(!caller.environment.contains_key("TABLE"));
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
        serde_yaml::from_str("Type: HttpApi\nProperties:\n  ApiId: !Ref HttpApi\n").expect("yaml");
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

const WEBSOCKET: &str = r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action }
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: prod }
  Table:
    Type: AWS::DynamoDB::Table
  ChatFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: ws-chat } }
  ConnectFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: ws-connect } }
    Properties:
      Events:
        Feed:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 50
            MaximumBatchingWindowInSeconds: 2
            MaximumRetryAttempts: -1
  ChatIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ChatFunction.Arn}/invocations
  ConnectIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: { Ref: Api }
      IntegrationType: AWS_PROXY
      IntegrationUri:
        Fn::Sub: arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/${ConnectFunction.Arn}/invocations
  ChatRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: chat, Target: !Sub "integrations/${ChatIntegration}" }
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $connect
      Target: !Join ["/", [integrations, !Ref ConnectIntegration]]
"#;

#[test]
fn websocket_routes_follow_route_integration_and_function() {
    let template = parse_template(WEBSOCKET).expect("parses");
    let api = template.websocket.expect("a WebSocket API");
    assert_eq!(api.logical_id, "Api");
    assert_eq!(api.selection_path, ["action"]);
    assert_eq!(api.stage, "prod");
    assert_eq!(api.function_for("chat"), Some("ws-chat"));
    assert_eq!(api.function_for("$connect"), Some("ws-connect"));
    assert_eq!(api.function_for("$default"), None);
    let keys: Vec<&str> = api.routes.iter().map(|r| r.route_key.as_str()).collect();
    assert_eq!(keys, ["$connect", "chat"]);
}

#[test]
fn template_without_websocket_api_has_none() {
    assert_eq!(parse_template(TEMPLATE).expect("parses").websocket, None);
}

#[test]
fn broken_websocket_chains_name_the_route() {
    let missing_integration =
        WEBSOCKET.replace("integrations/${ChatIntegration}", "integrations/${Nope}");
    let err = parse_template(&missing_integration).expect_err("broken");
    let text = err.to_string();
    assert!(
        text.contains("chat") && text.contains("ChatRoute") && text.contains("Nope"),
        "{text}"
    );

    let missing_function = WEBSOCKET.replace("${ChatFunction.Arn}", "${Gone.Arn}");
    let err = parse_template(&missing_function).expect_err("broken");
    assert!(err.to_string().contains("ChatRoute"), "{err}");

    let no_target = WEBSOCKET.replace(", Target: !Sub \"integrations/${ChatIntegration}\"", "");
    let err = parse_template(&no_target).expect_err("broken");
    assert!(err.to_string().contains("no Target"), "{err}");

    let not_proxy = WEBSOCKET.replacen("IntegrationType: AWS_PROXY", "IntegrationType: HTTP", 1);
    let err = parse_template(&not_proxy).expect_err("broken");
    assert!(err.to_string().contains("AWS_PROXY"), "{err}");

    let duplicate = WEBSOCKET.replace("RouteKey: chat", "RouteKey: $connect");
    let err = parse_template(&duplicate).expect_err("duplicate");
    assert!(err.to_string().contains("also declared"), "{err}");

    let expression = WEBSOCKET.replace("$request.body.action", "$request.header.x");
    let err = parse_template(&expression).expect_err("unsupported selection");
    assert!(
        err.to_string().contains("RouteSelectionExpression"),
        "{err}"
    );
}

#[test]
fn dynamodb_events_become_stream_sources() {
    let template = parse_template(WEBSOCKET).expect("parses");
    let f = template
        .functions
        .iter()
        .find(|f| f.name == "ws-connect")
        .expect("function");
    assert_eq!(
        f.stream_sources,
        [StreamSource {
            event_id: "Feed".into(),
            stream: StreamRef::Table("Table".into()),
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 50,
            max_batching_window: Duration::from_secs(2),
            max_retry_attempts: None,
            bisect_on_error: false,
            enabled: true,
            filters: Filters::default(),
        }]
    );
    assert!(f.other_events.is_empty());
}

#[test]
fn dynamodb_events_are_checked() {
    let not_a_table = WEBSOCKET.replace("!GetAtt Table.StreamArn", "!GetAtt Api.StreamArn");
    let err = parse_template(&not_a_table).expect_err("not a table");
    assert!(err.to_string().contains("AWS::DynamoDB::Table"), "{err}");
    let no_position = WEBSOCKET.replace("StartingPosition: TRIM_HORIZON", "");
    assert!(parse_template(&no_position).is_err());
    let big = WEBSOCKET.replace("BatchSize: 50", "BatchSize: 20000");
    assert!(parse_template(&big).is_err());
    let event: Value = serde_yaml::from_str(
        "Type: DynamoDB\nProperties: {Stream: arn:aws:dynamodb:x, StartingPosition: LATEST}\n",
    )
    .expect("yaml");
    let FunctionEvent::DynamoDb(source) = parse_event(&event).expect("parses") else {
        panic!("not a DynamoDB event");
    };
    assert_eq!(source.stream, StreamRef::Arn("arn:aws:dynamodb:x".into()));
    assert_eq!(source.batch_size, 100, "Lambda's default");
    assert_eq!(source.max_batching_window, Duration::ZERO);
    assert_eq!(source.max_retry_attempts, None, "Lambda's default: -1");
    // FilterCriteria is read (and evaluated by event_source); one it cannot evaluate
    // exactly refuses the template.
    let filtered = |pattern: &str| -> Result<FunctionEvent, String> {
        let event: Value = serde_yaml::from_str(&format!(
            "Type: DynamoDB\nProperties:\n  Stream: arn:aws:dynamodb:x\n  StartingPosition: LATEST\n  \
             FilterCriteria:\n    Filters:\n      - Pattern: '{pattern}'\n"
        ))
        .expect("yaml");
        parse_event(&event)
    };
    let Ok(FunctionEvent::DynamoDb(source)) = filtered(r#"{"eventName": ["INSERT"]}"#) else {
        panic!("a filtered mapping parses");
    };
    assert!(
        source
            .filters
            .pass(&serde_json::json!({"eventName": "INSERT"}))
    );
    assert!(
        !source
            .filters
            .pass(&serde_json::json!({"eventName": "REMOVE"}))
    );
    let refused =
        filtered(r#"{"eventName": [{"wildcard": "IN*"}]}"#).expect_err("unknown operator");
    assert!(refused.contains("FilterCriteria"), "{refused}");
}

#[test]
fn sub_references_skip_escapes() {
    assert_eq!(sub_references("a${X}b${!Literal}c${Y.Arn}"), ["X", "Y.Arn"]);
}

/// [`WEBSOCKET`] with a Lambda REQUEST authorizer on `$connect`.
fn with_authorizer(identity_source: &str) -> String {
    let mut text = WEBSOCKET.replace(
        "      RouteKey: $connect\n",
        "      RouteKey: $connect\n      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref Auth\n",
    );
    text.push_str(&format!(
        r#"  AuthFunction:
    Type: AWS::Serverless::Function
    Metadata: {{ BuildProperties: {{ Binary: ws-authorize }} }}
  Auth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref Api
      Name: auth
      AuthorizerType: REQUEST
      AuthorizerUri: !Sub arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{AuthFunction.Arn}}/invocations
{identity_source}"#
    ));
    text
}

#[test]
fn connect_authorizer_resolves_to_its_function_and_identity_sources() {
    let text = with_authorizer(
        "      IdentitySource:\n        - route.request.header.Host\n        - route.request.querystring.streamId\n",
    );
    let api = parse_template(&text)
        .expect("parses")
        .websocket
        .expect("a WebSocket API");
    assert_eq!(
        api.connect_authorizer,
        Some(WebSocketAuthorizer {
            logical_id: "Auth".into(),
            function: "ws-authorize".into(),
            identity_sources: vec![
                IdentitySource::Header("host".into()),
                IdentitySource::QueryString("streamId".into()),
            ],
        })
    );
    assert_eq!(api.function_for("$connect"), Some("ws-connect"));
    let functions: Vec<&str> = api.functions().collect();
    assert!(functions.contains(&"ws-authorize"), "{functions:?}");

    let none = parse_template(&with_authorizer(""))
        .expect("parses")
        .websocket
        .and_then(|api| api.connect_authorizer)
        .expect("an authorizer");
    assert!(none.identity_sources.is_empty(), "no IdentitySource: none");
}

#[test]
fn routes_without_custom_authorization_have_no_authorizer() {
    let api = parse_template(WEBSOCKET)
        .expect("parses")
        .websocket
        .expect("api");
    assert_eq!(api.connect_authorizer, None);
    let explicit_none = WEBSOCKET.replace(
        "      RouteKey: $connect\n",
        "      RouteKey: $connect\n      AuthorizationType: NONE\n",
    );
    let api = parse_template(&explicit_none)
        .expect("parses")
        .websocket
        .expect("api");
    assert_eq!(api.connect_authorizer, None);
}

#[test]
fn authorizer_template_errors_name_the_route_and_the_authorizer() {
    let expect_err = |text: &str, needles: &[&str]| {
        let err = parse_template(text).expect_err("refused").to_string();
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in: {err}");
        }
    };
    let header = "      IdentitySource:\n        - route.request.header.Host\n";
    let good = with_authorizer(header);

    expect_err(
        &good.replace("      AuthorizerId: !Ref Auth\n", ""),
        &["ConnectRoute", "CUSTOM without AuthorizerId"],
    );
    expect_err(
        &good.replace(
            "AuthorizerId: !Ref Auth",
            "AuthorizerId: !Ref ChatIntegration",
        ),
        &[
            "ConnectRoute",
            "ChatIntegration",
            "not an AWS::ApiGatewayV2::Authorizer",
        ],
    );
    expect_err(
        &good.replace("AuthorizerId: !Ref Auth", "AuthorizerId: !Ref Nope"),
        &["ConnectRoute", "Nope"],
    );
    expect_err(
        &good.replace("AuthorizationType: CUSTOM", "AuthorizationType: AWS_IAM"),
        &["$connect", "AWS_IAM", "cannot emulate IAM"],
    );
    expect_err(
        &good.replace("AuthorizationType: CUSTOM", "AuthorizationType: NONE"),
        &["ConnectRoute", "AuthorizerId is set"],
    );
    // AWS allows authorizers on $connect only.
    let on_chat = good
        .replace(
            "      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref Auth\n",
            "",
        )
        .replace(
            "RouteKey: chat, Target",
            "RouteKey: chat, AuthorizationType: CUSTOM, AuthorizerId: !Ref Auth, Target",
        );
    expect_err(&on_chat, &["chat", "ChatRoute", "Auth", "$connect only"]);
    expect_err(
        &with_authorizer("      IdentitySource:\n        - route.request.body.token\n"),
        &[
            "authorizer Auth",
            "route.request.body.token",
            "not supported",
        ],
    );
    expect_err(
        &good.replace("AuthorizerType: REQUEST", "AuthorizerType: JWT"),
        &["authorizer Auth", "JWT"],
    );
    expect_err(
        &good.replace("${AuthFunction.Arn}", "${Gone.Arn}"),
        &["authorizer Auth", "AuthorizerUri"],
    );
    expect_err(
        &good.replace(
            "      ApiId: !Ref Api\n      Name: auth",
            "      ApiId: !Ref Other\n      Name: auth",
        ),
        &["authorizer Auth", "ApiId"],
    );
}
