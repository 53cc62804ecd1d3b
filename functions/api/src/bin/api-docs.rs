//! Lambda `api-docs`: `GET /api/openapi.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::docs::openapi).await
}
