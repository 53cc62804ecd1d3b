//! Lambda `questions-answer`: `POST /api/streams/{id}/questions/{questionId}/answer`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::questions_answer()
}
