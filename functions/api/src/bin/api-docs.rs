//! Lambda `api-docs`: `GET /api/openapi.json`.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::api_docs()
}
