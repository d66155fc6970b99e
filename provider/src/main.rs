//! The plugin binary Terraform starts: log to stderr, serve the provider, exit.

use std::sync::Arc;

use autoheal_provider::plugin::{logging, serve::serve};
use autoheal_provider::provider::AutohealProvider;

/// One thread: Terraform starts this process 3-5 times per command, mostly to answer a few
/// small calls, and the work of a stack is waiting on AWS. Worker threads cost each start
/// their creation and cross-thread wake-ups (0.3-0.5 ms of CPU per process, measured in
/// BENCHMARKS.md's plugin section) and bought no apply time (N=10 and N=50 stacks as fast).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    logging::init();
    let code = serve(Arc::new(AutohealProvider::new())).await;
    std::process::exit(code);
}
