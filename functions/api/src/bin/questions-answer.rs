//! Lambda `questions-answer`: `POST /api/streams/{id}/questions/{questionId}/answer`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::questions::answer).await
}
