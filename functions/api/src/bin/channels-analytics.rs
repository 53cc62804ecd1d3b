//! Lambda `channels-analytics`: `GET /api/channels/{channelId}/analytics`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::channels_analytics()
}
