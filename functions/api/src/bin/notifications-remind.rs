//! Lambda `notifications-remind`: one reminder before a scheduled stream (invoked by its schedule).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::notifications_remind()
}
