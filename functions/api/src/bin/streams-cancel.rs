//! Lambda `streams-cancel`: `POST /api/streams/{id}/cancel`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::cancel).await
}
