//! Lambda `members-remove`: `DELETE /api/channels/{channelId}/members/{userId}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::moderation::remove_member).await
}
