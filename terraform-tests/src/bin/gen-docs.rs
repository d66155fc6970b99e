//! `gen-docs`: regenerates docs/ from the provider installed in the filesystem mirror and the
//! templates in docs/templates/ (see [`terraform_tests::docs`]). Run it through
//! `tools/gen-docs`, which sets up the environment (`.tools/env.sh`).
//!
//! ```text
//! gen-docs           write docs/ (only the pages that changed)
//! gen-docs --check   change nothing; fail, with a diff, when docs/ is out of date
//! ```
//!
//! It uses Terraform 1.0.3 (`AUTOHEAL_TF_1_0`), the oldest supported version; `tests/docs.rs`
//! checks that every tested Terraform version renders the same pages.

use std::process::ExitCode;

use anyhow::{bail, Context};
use terraform_tests::{docs, terraform_versions, workspace_root};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gen-docs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let check = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => false,
        [flag] if flag == "--check" => true,
        other => bail!("usage: gen-docs [--check] (got {other:?})"),
    };
    let root = workspace_root();
    let tf = terraform_versions()
        .into_iter()
        .next()
        .context("no Terraform to run")?;
    let inputs = docs::collect(&tf, &root)?;
    let pages = docs::render(&inputs, &root)?;
    if check {
        let problems = docs::check(&pages, &root)?;
        if problems.is_empty() {
            eprintln!("gen-docs: docs/ is up to date ({} pages)", pages.len());
            return Ok(ExitCode::SUCCESS);
        }
        for p in &problems {
            eprintln!("{p}\n");
        }
        eprintln!("gen-docs: docs/ is out of date: run tools/gen-docs");
        return Ok(ExitCode::FAILURE);
    }
    let touched = docs::write(&pages, &root)?;
    for path in &touched {
        eprintln!("gen-docs: wrote {}", path.display());
    }
    eprintln!(
        "gen-docs: {} of {} pages changed ({})",
        touched.len(),
        pages.len(),
        inputs.terraform
    );
    Ok(ExitCode::SUCCESS)
}
