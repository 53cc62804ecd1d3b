//! Lambda `me-notifications-read`: `POST /api/me/notifications/read`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::me_notifications_read()
}
