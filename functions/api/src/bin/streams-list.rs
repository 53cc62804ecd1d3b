//! Lambda `streams-list`: `GET /api/streams/live, /scheduled, /past`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::list).await
}
