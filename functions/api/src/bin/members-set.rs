//! Lambda `members-set`: `PUT /api/channels/{channelId}/members/{userId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::members_set()
}
