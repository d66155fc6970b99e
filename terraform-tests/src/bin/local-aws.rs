//! `local-aws`: runs the tests' local AWS (moto, extended; see `terraform_tests::local_aws`)
//! until Ctrl-C or SIGTERM, for the demo and for poking at it by hand.
//!
//! ```text
//! cargo run --release -p terraform-tests --bin local-aws -- [--clock-scale F] [--profile P] [--region R]
//! ```
//!
//! It prints `endpoint=http://127.0.0.1:PORT` and an `export AWS_ENDPOINT_URL=...` line on
//! stdout (everything else goes to stderr), then waits. Clock scale 1 (AWS's own delays)
//! and the `realistic` profile unless told otherwise.

use std::process::ExitCode;
use std::time::Duration;

use terraform_tests::local_aws::{LocalAws, Options, Profile, DEFAULT_REGION};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str =
    "usage: local-aws [--clock-scale F] [--profile realistic|fast] [--region REGION] [--log-level LEVEL]";

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        clock_scale: 1.0,
        region: DEFAULT_REGION.to_string(),
        // A local AWS for people (the demo): as hard as AWS.
        profile: Profile::Realistic,
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--clock-scale" => {
                let v = value()?;
                options.clock_scale = v
                    .parse()
                    .ok()
                    .filter(|f: &f64| *f > 0.0 && f.is_finite())
                    .ok_or_else(|| format!("--clock-scale {v:?}: expected a number > 0"))?;
            }
            "--region" => options.region = value()?,
            "--profile" => {
                options.profile = match value()?.as_str() {
                    "realistic" => Profile::Realistic,
                    "fast" => Profile::Fast,
                    other => {
                        return Err(format!("--profile {other:?}: expected realistic or fast"))
                    }
                }
            }
            "--log-level" => options.log_level = value()?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut aws = match LocalAws::start_with(options) {
        Ok(aws) => aws,
        Err(e) => {
            eprintln!("local-aws: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("endpoint={}", aws.endpoint());
    println!("export AWS_ENDPOINT_URL={}", aws.endpoint());
    println!("export AWS_REGION={}", aws.region());
    eprintln!(
        "local-aws: serving (log {}); Ctrl-C or SIGTERM stops it",
        aws.log_path().display()
    );
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("local-aws: cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                if let Some(status) = aws.try_wait() {
                    eprintln!("local-aws: the server exited on its own ({status})\n{}", aws.log_tail(50));
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    eprintln!("local-aws: stopping");
    match aws.stop() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("local-aws: the server ended with {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("local-aws: {e:#}");
            ExitCode::FAILURE
        }
    }
}
