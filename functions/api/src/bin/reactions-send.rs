//! Lambda `reactions-send`: `POST /api/streams/{id}/reactions`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::reactions_send()
}
