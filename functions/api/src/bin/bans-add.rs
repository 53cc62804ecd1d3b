//! Lambda `bans-add`: `PUT /api/streams/{id}/bans/{userId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::bans_add()
}
