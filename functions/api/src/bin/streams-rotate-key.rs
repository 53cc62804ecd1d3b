//! Lambda `streams-rotate-key`: `POST /api/streams/{id}/key`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_rotate_key()
}
