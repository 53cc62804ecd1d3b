//! Lambda `streams-thumbnail`: `POST /api/streams/{id}/thumbnail`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::thumbnail_upload).await
}
