//! Lambda `notifications-send`: one reminder before a scheduled stream (invoked by its
//! schedule) or one "live now" announcement (invoked by `webhooks-dispatch`).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::notifications_send()
}
