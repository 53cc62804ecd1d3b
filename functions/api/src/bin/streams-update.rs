//! Lambda `streams-update`: `PATCH /api/streams/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::update).await
}
