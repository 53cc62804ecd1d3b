//! Lambda `nodes-list`: `GET /api/nodes` (operators).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::nodes::list).await
}
