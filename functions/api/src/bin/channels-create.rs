//! Lambda `channels-create`: `POST /api/channels`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::channels_create()
}
