//! Lambda `streams-create`: `POST /api/streams/create`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_create()
}
