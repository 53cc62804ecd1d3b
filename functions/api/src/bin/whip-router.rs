//! Lambda `whip-router`: `POST /whip/{streamId}`, `PATCH|DELETE /whip/{streamId}/{sessionId}`
//! (see `rill_api::handlers::whip` for why it proxies and what it may cost).

use std::sync::Arc;

use rill_api::handlers::whip::WhipRouter;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let router = Arc::new(WhipRouter::new()?);
    rill_api::runtime::run(move |app, req| {
        let router = router.clone();
        async move { router.handle(app, req).await }
    })
    .await
}
