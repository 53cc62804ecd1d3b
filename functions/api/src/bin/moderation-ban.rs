//! Lambda `moderation-ban`: `PUT /api/streams/{id}/bans/{userId}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::moderation::ban_user).await
}
