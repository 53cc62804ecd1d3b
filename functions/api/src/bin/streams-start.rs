//! Lambda `streams-start`: `POST /api/streams/{id}/start`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::start).await
}
