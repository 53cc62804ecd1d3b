//! Lambda `questions-list`: `GET /api/streams/{id}/questions`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::questions::list).await
}
