//! `sweep-real-account`: deletes everything the real-account tests made under
//! `AUTOHEAL_REAL_AWS_PREFIX` in `AUTOHEAL_REAL_AWS_REGION` (the same opt-in as the tests:
//! `AUTOHEAL_REAL_AWS=1`, the region, the prefix; no AMI needed), for after a run that was
//! interrupted. It deletes only what carries the `autoheal:stack` tag with a value starting
//! `<prefix>-` **and** has a name starting `<prefix>-` (IAM roles: also under `/autoheal/`);
//! see `terraform_tests::sweeper`.
//!
//! ```text
//! cargo run --release -p terraform-tests --bin sweep-real-account -- [--dry-run]
//! ```
//!
//! `--dry-run` lists what would be deleted and deletes nothing. Exit status 0 when nothing of
//! the prefix is left (or, with `--dry-run`, when the listing worked), 1 otherwise, 2 for a
//! usage or configuration error.

use std::process::ExitCode;

use terraform_tests::real_account::{parse_for_sweep, process_env, HOW_TO_RUN};
use terraform_tests::sweeper::{SweepOptions, Sweeper};

const USAGE: &str = "usage: sweep-real-account [--dry-run]";

fn main() -> ExitCode {
    let mut dry_run = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--dry-run" | "-n" => dry_run = true,
            "--help" | "-h" => {
                println!("{USAGE}\n\nThe account: {HOW_TO_RUN}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let account = match parse_for_sweep(process_env()) {
        Ok(Some(account)) => account,
        Ok(None) => {
            eprintln!("no real AWS account configured: {HOW_TO_RUN}");
            return ExitCode::from(2);
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = rt.block_on(async {
        let clients = account.clients().await?;
        let sweeper = Sweeper::new(&clients, account.scope());
        let mut options = SweepOptions::real_account();
        options.dry_run = dry_run;
        sweeper.delete_all(&options).await
    });
    let what = format!("{}-* in {}", account.prefix, account.region);
    match result {
        Ok(report) if report.found.is_empty() => {
            println!("nothing of {what}");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!("{verb} {} object(s) of {what}:", report.found.len());
            for l in &report.found {
                println!("  {l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sweeping {what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
