//! Lambda `webhooks-list`: `GET /api/channels/{channelId}/webhooks`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_list()
}
