//! Lambda `events-fanout-shard`: one shard of a large fan-out (`{streamId, frames,
//! connectionIds}`), invoked asynchronously by `events-fanout` and the socket functions.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::events_fanout_shard()
}
