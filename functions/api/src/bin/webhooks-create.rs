//! Lambda `webhooks-create`: `POST /api/channels/{channelId}/webhooks`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_create()
}
