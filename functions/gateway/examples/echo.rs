//! A protocol probe for the gateway's own tests, not a fake of any Rill function: a
//! `lambda_http` function that reports what it received and misbehaves on request, so the
//! tests can drive every path of the Runtime API (answer, error, crash, timeout).
//!
//! Routes (by the last path segments): `/echo/...` answers the request as JSON,
//! `/sleep/{ms}` answers after a delay, `/fail` returns an error, `/crash` exits.

use std::time::Duration;

use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};

async fn handle(req: Request) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["sleep", ms] => {
            let ms: u64 = ms.parse()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        ["fail"] => return Err("asked to fail".into()),
        ["crash"] => std::process::exit(3),
        _ => {}
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": path,
        "pathParameters": req.path_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<std::collections::BTreeMap<_, _>>(),
        "query": req.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<std::collections::BTreeMap<_, _>>(),
        "authorization": req.headers().get("authorization").and_then(|v| v.to_str().ok()),
        "cookie": req.headers().get("cookie").and_then(|v| v.to_str().ok()),
        "bodyLen": req.body().len(),
        "pid": std::process::id(),
        "functionName": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
    });
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("access-control-allow-origin", "https://overridden.example")
        .header("set-cookie", "seen=1; Path=/")
        .body(Body::Text(body.to_string()))?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
