//! Lambda `moderators-remove`: `DELETE /api/streams/{id}/moderators/{userId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::moderators_remove()
}
