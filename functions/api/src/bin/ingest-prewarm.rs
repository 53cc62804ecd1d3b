//! Lambda `ingest-prewarm`: invoked by EventBridge Scheduler (a stream's one-time pre-warm
//! schedule, and every 5 minutes); sets the ingest fleet's minimum from the scheduled
//! streams about to start (see `rill_api::prewarm`).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ingest_prewarm()
}
