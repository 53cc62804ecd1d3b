//! Lambda `streams-create`: `POST /api/streams/create`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    rill_api::runtime::run(rill_api::handlers::streams::create).await
}
