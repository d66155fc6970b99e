//! The Lambda executable (`bootstrap`): settings, clients, then the runtime loop.

use std::process::ExitCode;
use std::sync::Arc;

use autoheal_handler::{init_error, logging, Clients, Config, Healer};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    logging::init();
    let config = match Config::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "init failed");
            match std::env::var(init_error::RUNTIME_API_ENV) {
                Ok(api) => {
                    match init_error::report(&api, "Autoheal.InvalidSettings", &e.to_string()) {
                        Ok(status) => {
                            tracing::info!(status, "init error reported to the Runtime API")
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "could not report the init error")
                        }
                    }
                }
                Err(_) => {
                    tracing::error!("AWS_LAMBDA_RUNTIME_API is not set: not running in Lambda")
                }
            }
            return ExitCode::FAILURE;
        }
    };
    // Built once per execution environment: every invocation reuses the clients and their
    // connection pools.
    let healer = Arc::new(Healer::new(Clients::from_env().await, config));
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let healer = Arc::clone(&healer);
        async move { healer.invoke(event).await }
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}
