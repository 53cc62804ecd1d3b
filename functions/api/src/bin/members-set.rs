//! Lambda `members-set`: `PUT /api/channels/{channelId}/members/{userId}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::moderation::set_member).await
}
