//! Lambda `channels-get`: `GET /api/channels/{channelId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::channels_get()
}
