//! Lambda `moderators-list`: `GET /api/streams/{id}/moderators`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::moderation::list_moderators).await
}
