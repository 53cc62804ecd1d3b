//! Lambda `questions-upvote`: `POST /api/streams/{id}/questions/{questionId}/upvote`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::questions_upvote()
}
