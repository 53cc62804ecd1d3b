//! Lambda `moderators-list`: `GET /api/streams/{id}/moderators`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::moderators_list()
}
