//! Lambda `webhooks-deliver`: one webhook delivery run (invoked asynchronously).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::webhooks_deliver()
}
