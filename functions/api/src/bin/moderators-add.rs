//! Lambda `moderators-add`: `PUT /api/streams/{id}/moderators/{userId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::moderators_add()
}
