//! Lambda `webhooks-dispatch`: feed appends on the table stream turned into webhook delivery runs.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_dispatch()
}
