//! The repository's own template: it parses, its routes do not conflict, the routes the
//! API depends on resolve to the intended functions, every WebSocket route's chain
//! resolves (and `$connect`'s authorizer), and the fan-out function is fed by the table's
//! stream.

use std::path::Path;

use std::time::Duration;

use rill_gateway::routes::{Lookup, Router};
use rill_gateway::template::{IdentitySource, StartingPosition, StreamRef};

fn repo_template() -> rill_gateway::Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    rill_gateway::load_template(&path).expect("infra/template.yaml parses")
}

fn function_for(router: &Router, method: &str, path: &str) -> String {
    match router.lookup(method, path) {
        Lookup::Found(m) => m.function,
        other => panic!("{method} {path}: {other:?}"),
    }
}

#[test]
fn repository_template_routes_compile_and_resolve() {
    let template = repo_template();
    let functions = template.functions;
    assert!(!functions.is_empty());
    let websocket = template
        .websocket
        .expect("the template has a WebSocket API");
    for f in &functions {
        assert!(
            !f.routes.is_empty()
                || !f.stream_sources.is_empty()
                || websocket.functions().any(|name| name == f.name)
                // Triggered on AWS only (ingest-prewarm's ScheduleV2).
                || f.other_events.iter().any(|e| e == "ScheduleV2")
                // Invoked by another function through the Lambda Invoke API
                // (events-fanout-shard: `!Ref` resolved to its local name).
                || functions.iter().any(|g| g.environment.values().any(|v| *v == f.name)),
            "{} is not reachable: no HTTP route, WebSocket route, stream trigger, schedule or caller",
            f.name
        );
    }
    // The reminder schedules' settings resolve locally from the template itself.
    let create = functions
        .iter()
        .find(|f| f.name == "streams-create")
        .expect("streams-create");
    let env = |k: &str| create.environment.get(k).map(String::as_str);
    assert_eq!(
        env("REMINDER_FUNCTION_ARN"),
        Some(rill_gateway::template::local_function_arn("notifications-send").as_str())
    );
    assert_eq!(
        env("REMINDER_ROLE_ARN"),
        Some("arn:aws:iam::000000000000:role/NotificationsSchedulerRole")
    );
    assert_eq!(
        env("REMINDER_SCHEDULE_GROUP"),
        Some("NotificationsScheduleGroup")
    );
    let router = Router::new(
        functions
            .iter()
            .flat_map(|f| f.routes.iter().map(move |r| (f.name.as_str(), r))),
    )
    .expect("no conflicting routes");
    assert_eq!(
        function_for(&router, "GET", "/api/streams/live"),
        "streams-list"
    );
    assert_eq!(
        function_for(&router, "GET", "/api/streams/01J0000000000000000000000"),
        "streams-get"
    );
    assert_eq!(
        function_for(&router, "POST", "/api/streams/create"),
        "streams-create"
    );
}

#[test]
fn repository_template_websocket_routes_resolve_to_their_functions() {
    let websocket = repo_template()
        .websocket
        .expect("the template has a WebSocket API");
    assert_eq!(websocket.selection_path, ["action"]);
    assert_eq!(websocket.stage, "ws");
    for (route, function) in [
        ("$connect", "ws-connect"),
        ("$disconnect", "ws-disconnect"),
        ("$default", "ws-default"),
        ("chat", "ws-chat"),
        ("react", "ws-react"),
        ("question", "ws-question"),
        ("heartbeat", "ws-heartbeat"),
        ("ping", "ws-ping"),
    ] {
        assert_eq!(websocket.function_for(route), Some(function), "{route}");
    }
    // ws-authorize decides every handshake; Host is the identity source every handshake
    // carries, so anonymous viewers reach the function.
    let authorizer = websocket
        .connect_authorizer
        .expect("$connect has an authorizer");
    assert_eq!(authorizer.function, "ws-authorize");
    assert_eq!(authorizer.logical_id, "WsAuthorizer");
    assert_eq!(
        authorizer.identity_sources,
        [IdentitySource::Header("host".into())]
    );
}

#[test]
fn repository_template_feeds_events_fanout_from_the_table_stream() {
    let functions = repo_template().functions;
    let fanout = functions
        .iter()
        .find(|f| f.name == "events-fanout")
        .expect("events-fanout");
    let [source] = fanout.stream_sources.as_slice() else {
        panic!("one stream source: {:?}", fanout.stream_sources);
    };
    assert_eq!(source.stream, StreamRef::Table("StreamsTable".into()));
    assert_eq!(source.starting_position, StartingPosition::Latest);
    assert_eq!(source.batch_size, 1000);
    assert_eq!(source.max_batching_window, Duration::ZERO);
    assert_eq!(source.max_retry_attempts, Some(3));
    assert!(source.enabled);
}
