//! Lambda `streams-rotate-key`: `POST /api/streams/{id}/key`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::rotate_key).await
}
