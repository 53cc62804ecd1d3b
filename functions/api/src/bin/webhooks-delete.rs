//! Lambda `webhooks-delete`: `DELETE /api/channels/{channelId}/webhooks/{webhookId}`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_delete()
}
