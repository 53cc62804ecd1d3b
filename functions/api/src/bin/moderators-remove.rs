//! Lambda `moderators-remove`: `DELETE /api/streams/{id}/moderators/{userId}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::moderation::remove_moderator).await
}
