//! Lambda `me-notifications-list`: `GET /api/me/notifications`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::me_notifications_list()
}
