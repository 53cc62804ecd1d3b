//! Lambda `webhooks-update`: `PATCH /api/channels/{channelId}/webhooks/{webhookId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_update()
}
