//! Lambda `questions-list`: `GET /api/streams/{id}/questions`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::questions_list()
}
