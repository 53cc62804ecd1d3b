//! The template is the one source of truth: its routes, the function binaries, the OpenAPI
//! document and the table definition must all agree with it.

use std::collections::BTreeSet;

use rill_tests::{Stack, User, repo_root};
use serde_json::json;
use serde_yaml::Value as Yaml;

fn template() -> Yaml {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).expect("template");
    serde_yaml::from_str(&text).expect("template parses")
}

/// (function name, method, path) for every HttpApi event of every function.
fn template_routes() -> (BTreeSet<String>, BTreeSet<(String, String, String)>) {
    let t = template();
    let mut functions = BTreeSet::new();
    let mut routes = BTreeSet::new();
    let resources = t["Resources"].as_mapping().expect("Resources");
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            r["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        let name = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary")
            .to_owned();
        if let Some(events) = r["Properties"]["Events"].as_mapping() {
            for (_, e) in events {
                if e["Type"].as_str() == Some("HttpApi") {
                    // SAM: an event with neither Method nor Path is the `$default` route.
                    let p = &e["Properties"];
                    routes.insert((
                        name.clone(),
                        p["Method"].as_str().unwrap_or("ANY").to_uppercase(),
                        p["Path"].as_str().unwrap_or("$default").to_owned(),
                    ));
                }
            }
        }
        functions.insert(name);
    }
    (functions, routes)
}

#[test]
fn every_function_has_a_binary_and_every_binary_a_function() {
    let (functions, routes) = template_routes();
    let bins: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions/api/src/bin"))
        .expect("bin dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        functions, bins,
        "template functions vs functions/api/src/bin"
    );
    for f in &functions {
        assert!(
            rill_tests::bin_dir().join(f).exists(),
            "binary {f} is built"
        );
        let triggered = routes.iter().any(|(name, _, _)| name == f)
            || ws_routes().values().any(|name| name == f)
            || stream_consumers().contains(f)
            || scheduled_functions().contains(f)
            || invoked_functions().contains(f)
            || authorizer_functions().contains(f);
        assert!(
            triggered,
            "{f} has a route, a socket route, a table-stream event, a schedule, a caller or \
             an API's authorizer"
        );
    }
}

/// The resource named in a `!Sub` string (`${Name}` or `${Name.Arn}`).
fn sub_ref(v: &Yaml) -> Option<String> {
    let text = match v {
        Yaml::Tagged(t) => t.value.as_str()?.to_owned(),
        other => other.as_str()?.to_owned(),
    };
    // Pseudo parameters (${AWS::Region}) are not resources.
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .find(|name| !name.starts_with("AWS::"))
        .map(|name| name.trim_end_matches(".Arn").to_owned())
}

/// Functions an `AWS::ApiGatewayV2::Authorizer` calls (its `AuthorizerUri`).
fn authorizer_functions() -> BTreeSet<String> {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::ApiGatewayV2::Authorizer"))
        .filter_map(|r| sub_ref(&r["Properties"]["AuthorizerUri"]))
        .filter_map(|id| {
            resources.get(Yaml::from(id.as_str()))?["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// WebSocket route key -> function name, following Route -> Integration -> Function.
fn ws_routes() -> std::collections::BTreeMap<String, String> {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let by_id = |id: &str| resources.get(Yaml::from(id)).cloned().unwrap_or(Yaml::Null);
    let mut out = std::collections::BTreeMap::new();
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let key = r["Properties"]["RouteKey"]
            .as_str()
            .expect("RouteKey")
            .to_owned();
        let integration = by_id(&sub_ref(&r["Properties"]["Target"]).expect("Target reference"));
        let function = by_id(
            &sub_ref(&integration["Properties"]["IntegrationUri"]).expect("function reference"),
        );
        let name = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary")
            .to_owned();
        out.insert(key, name);
    }
    out
}

/// Functions fed by the table's stream.
fn stream_consumers() -> BTreeSet<String> {
    functions_with_event("DynamoDB")
}

/// Functions invoked by EventBridge Scheduler (`ingest-prewarm`).
fn scheduled_functions() -> BTreeSet<String> {
    functions_with_event("ScheduleV2")
}

/// Functions another function invokes: named in its environment (`!Ref XFunction`) and
/// granted to it by `lambda:InvokeFunction` on exactly that function's ARN
/// (`events-fanout-shard`).
fn invoked_functions() -> BTreeSet<String> {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let mut out = BTreeSet::new();
    for (_, r) in resources {
        let env = r["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        for value in env.values() {
            let Some(target) = ref_of(value) else {
                continue;
            };
            let callee = &t["Resources"][target.as_str()];
            if callee["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let granted = r["Properties"]["Policies"]
                .as_sequence()
                .into_iter()
                .flatten()
                .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
                .any(|st| {
                    st["Action"].as_str() == Some("lambda:InvokeFunction")
                        && get_att_of(&st["Resource"]) == Some((target.clone(), "Arn".into()))
                });
            assert!(
                granted,
                "{target} is named in an environment but not granted"
            );
            out.insert(
                callee["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .expect("Binary")
                    .to_owned(),
            );
        }
    }
    out
}

/// `!Ref X` → `X`.
fn ref_of(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(str::to_owned),
        _ => v["Ref"].as_str().map(str::to_owned),
    }
}

/// `!GetAtt X.Attr` → `(X, Attr)`.
fn get_att_of(v: &Yaml) -> Option<(String, String)> {
    let arg = match v {
        Yaml::Tagged(t) if t.tag == "GetAtt" => t.value.clone(),
        _ => v["Fn::GetAtt"].clone(),
    };
    match &arg {
        Yaml::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        Yaml::Sequence(p) if p.len() == 2 => {
            Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

/// Functions with at least one event of this `Type`.
fn functions_with_event(kind: &str) -> BTreeSet<String> {
    let t = template();
    let mut out = BTreeSet::new();
    for (_, r) in t["Resources"].as_mapping().expect("Resources") {
        let events = r["Properties"]["Events"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        if events.values().any(|e| e["Type"].as_str() == Some(kind)) {
            out.insert(
                r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .expect("Binary")
                    .to_owned(),
            );
        }
    }
    out
}

/// `!Sub` text (tagged or `Fn::Sub` form).
fn sub_of(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) if t.tag == "Sub" => t.value.as_str().map(str::to_owned),
        _ => v["Fn::Sub"].as_str().map(str::to_owned),
    }
}

/// Every socket route relies on the context `ws-authorize` answers at `$connect` (the
/// stream, the user, counted): the route must have it, and API Gateway must be allowed to
/// call it (a missing permission fails every handshake with 500 on AWS only).
#[test]
fn connect_is_authorized_by_ws_authorize_which_api_gateway_may_invoke() {
    let t = template();
    let r = &t["Resources"];
    let route = &r["WsConnectRoute"]["Properties"];
    assert_eq!(route["AuthorizationType"].as_str(), Some("CUSTOM"));
    let authorizer = ref_of(&route["AuthorizerId"]).expect("AuthorizerId: !Ref");
    let a = &r[authorizer.as_str()]["Properties"];
    assert_eq!(
        r[authorizer.as_str()]["Type"].as_str(),
        Some("AWS::ApiGatewayV2::Authorizer")
    );
    assert_eq!(a["AuthorizerType"].as_str(), Some("REQUEST"));
    let uri = sub_of(&a["AuthorizerUri"]).expect("AuthorizerUri: !Sub");
    assert!(uri.contains("${WsAuthorizeFunction.Arn}"), "{uri}");
    assert_eq!(
        r["WsAuthorizeFunction"]["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("ws-authorize")
    );
    let permitted = r.as_mapping().expect("Resources").values().any(|p| {
        p["Type"].as_str() == Some("AWS::Lambda::Permission")
            && ref_of(&p["Properties"]["FunctionName"]).as_deref() == Some("WsAuthorizeFunction")
            && p["Properties"]["Principal"].as_str() == Some("apigateway.amazonaws.com")
            && sub_of(&p["Properties"]["SourceArn"])
                .is_some_and(|s| s.ends_with(&format!("/authorizers/${{{authorizer}}}")))
    });
    assert!(permitted, "API Gateway may invoke the authorizer");
    // Anonymous viewers have no token: an identity source they lack would make API
    // Gateway refuse them without asking the function.
    let sources: Vec<&str> = a["IdentitySource"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(sources, ["route.request.header.Host"]);
}

#[test]
fn the_websocket_api_routes_every_action_to_its_function() {
    let routes = ws_routes();
    let expected: std::collections::BTreeMap<String, String> = [
        ("$connect", "ws-connect"),
        ("$disconnect", "ws-disconnect"),
        ("$default", "ws-default"),
        ("chat", "ws-chat"),
        ("react", "ws-react"),
        ("question", "ws-question"),
        ("heartbeat", "ws-heartbeat"),
        ("ping", "ws-ping"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(routes, expected);
    assert_eq!(
        stream_consumers(),
        BTreeSet::from([
            "events-fanout".to_owned(),
            "events-presence".to_owned(),
            "webhooks-dispatch".to_owned()
        ])
    );
}

#[test]
fn the_openapi_document_describes_exactly_the_template_routes() {
    let (_, routes) = template_routes();
    let doc: serde_json::Value =
        serde_json::from_str(rill_api::handlers::docs::OPENAPI_JSON).expect("openapi.json is JSON");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                let function = op["x-function"].as_str().expect("x-function").to_owned();
                documented.insert((function, method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(documented, routes);
}

#[test]
fn the_template_table_matches_the_local_bootstrap() {
    let t = template();
    let table = t["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .find(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .expect("a table")
        .clone();
    let p = &table["Properties"];
    let gsis: BTreeSet<&str> = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GSIs")
        .iter()
        .map(|g| g["IndexName"].as_str().expect("name"))
        .collect();
    use rill_aws::bootstrap::*;
    assert_eq!(
        gsis,
        BTreeSet::from([GSI_CHANNEL_STATUS, GSI_STATUS, GSI_KEY_HASH])
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(TTL_ATTRIBUTE)
    );
    assert_eq!(
        p["StreamSpecification"]["StreamViewType"].as_str(),
        Some("NEW_AND_OLD_IMAGES")
    );
}

#[tokio::test]
async fn the_api_serves_its_openapi_document() {
    let stack = Stack::start();
    let r = User::anonymous().get(&stack, "/api/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
}

/// Cases schemathesis found where a request the OpenAPI document allows was refused, or the
/// refusal did not match the document (issue 14), now behaviour and document agree.
#[tokio::test]
async fn requests_the_schema_allows_are_accepted_and_what_it_forbids_is_refused() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let (id, _) = owner
        .create_stream(&stack, json!({"channelId": "c", "title": "Contract"}))
        .await;
    let stream = format!("/api/streams/{id}");

    // JSON Schema's `integer` includes integral numbers written with a fraction.
    let r = owner
        .send(
            &stack,
            "PATCH",
            &stream,
            Some(json!({"settings": {"slowModeSeconds": 30.0, "maxBitrateKbps": 2500.0}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["settings"]["slowModeSeconds"], 30);
    assert_eq!(r.body["settings"]["maxBitrateKbps"], 2500);
    let r = owner
        .post(
            &stack,
            &format!("{stream}/thumbnail"),
            json!({"contentType": "image/jpeg", "contentLength": 333.0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A fraction is still not an integer.
    let r = owner
        .send(
            &stack,
            "PATCH",
            &stream,
            Some(json!({"settings": {"slowModeSeconds": 1.5}})),
        )
        .await;
    assert_eq!(r.status / 100, 4, "{}", r.text);
    assert_eq!(
        owner.get(&stack, &stream).await.body["settings"]["slowModeSeconds"],
        30
    );

    // `from` after `to` is an empty window, not an error.
    let r = owner
        .get(
            &stack,
            &format!("{stream}/metrics?from=2026-12-07T02:37:41.755Z&to=2026-12-07T02:37:34.626Z"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"], json!([]));
    // A malformed time is `invalid_query`, which the document lists for this operation.
    let r = owner.get(&stack, &format!("{stream}/metrics?to=")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));

    // Control characters are refused where the pattern says so: anywhere in what is sent,
    // a trailing carriage return included (it used to be trimmed away).
    for title in ["Title\r", "C1 \u{0085} control"] {
        let r = owner
            .send(&stack, "PATCH", &stream, Some(json!({"title": title})))
            .await;
        assert_eq!(r.status, 422, "{title:?}: {}", r.text);
        assert_eq!(r.body["error"]["field"], "title");
    }
    let doc: serde_json::Value =
        serde_json::from_str(rill_api::handlers::docs::OPENAPI_JSON).expect("openapi.json");
    let pattern = doc["components"]["schemas"]["Title"]["pattern"]
        .as_str()
        .expect("Title has a pattern");
    assert!(pattern.contains("\\u007F-\\u009F"), "{pattern}");
}

/// A literal path that reaches an `{id}` function with a method the document does not list
/// for it is 405 with `Allow`; a method no route takes is API Gateway's 404 (no `$default`
/// route: it would take the CORS preflights).
#[tokio::test]
async fn a_literal_path_reaching_an_id_route_with_another_method_is_405() {
    let stack = Stack::start();
    let anyone = User::anonymous();
    for (method, path, allow) in [
        ("PATCH", "/api/streams/create", "POST"),
        ("GET", "/api/streams/create", "POST"),
    ] {
        // Signed in: the function asks for sign-in before anything else.
        let r = User::named("someone")
            .send(&stack, method, path, None)
            .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.headers["allow"], allow, "{method} {path}");
    }
    let r = anyone
        .send(&stack, "TRACE", "/api/streams/create", None)
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = anyone.get(&stack, "/api/nothing/here").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // The routes themselves are untouched.
    assert_eq!(anyone.get(&stack, "/api/openapi.json").await.status, 200);
    assert_eq!(anyone.get(&stack, "/api/streams/live").await.status, 200);
}
