//! The repository's own template: it parses, its routes do not conflict, and the routes the
//! API depends on resolve to the intended functions.

use std::path::Path;

use rill_gateway::routes::{Lookup, Router};

fn repo_functions() -> Vec<rill_gateway::FunctionSpec> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    rill_gateway::load_functions(&path).expect("infra/template.yaml parses")
}

fn function_for(router: &Router, method: &str, path: &str) -> String {
    match router.lookup(method, path) {
        Lookup::Found(m) => m.function,
        other => panic!("{method} {path}: {other:?}"),
    }
}

#[test]
fn repository_template_routes_compile_and_resolve() {
    let functions = repo_functions();
    assert!(!functions.is_empty());
    for f in &functions {
        assert!(
            !f.routes.is_empty() || !f.other_events.is_empty(),
            "{} has no events",
            f.name
        );
    }
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
