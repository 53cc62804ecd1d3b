//! Lambda `nodes-list`: `GET /api/nodes` (operators).

fn main() -> Result<(), lambda_runtime::Error> {
    rill_api::functions::nodes_list()
}
