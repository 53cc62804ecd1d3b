//! Lambda `members-list`: `GET /api/channels/{channelId}/members`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::members_list()
}
