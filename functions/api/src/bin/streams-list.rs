//! Lambda `streams-list`: `GET /api/streams/live, /scheduled, /past`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::streams_list()
}
