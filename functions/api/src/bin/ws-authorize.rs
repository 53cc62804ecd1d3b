//! Lambda `ws-authorize`: the WebSocket API's `$connect` authorizer.

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::ws_authorize()
}
