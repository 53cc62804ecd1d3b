//! Lambda `questions-upvote`: `POST /api/streams/{id}/questions/{questionId}/upvote`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::questions::upvote).await
}
