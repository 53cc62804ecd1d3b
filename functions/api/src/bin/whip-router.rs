//! Lambda `whip-router`: `POST /whip/{streamId}`, `PATCH|DELETE /whip/{streamId}/{sessionId}`
//! (see `rill_api::handlers::whip` for why it proxies and what it may cost).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::whip_router()
}
