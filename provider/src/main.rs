//! The plugin binary Terraform starts: log to stderr, serve the provider, exit.

use std::sync::Arc;

use autoheal_provider::plugin::{logging, serve::serve};
use autoheal_provider::provider::AutohealProvider;

#[tokio::main]
async fn main() {
    logging::init();
    let code = serve(Arc::new(AutohealProvider::new())).await;
    std::process::exit(code);
}
