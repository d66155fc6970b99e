//! A Terratest-style runner for the Terraform CLI.
//!
//! [`Terraform::new`] copies a configuration directory (usually one of `examples/`) into a fresh
//! temporary directory, so tests never write `.terraform/`, lock files or state into the
//! repository, and tests running in parallel never share a working directory. Each method runs
//! one Terraform command there with `-no-color` (and `-input=false` where the command takes it)
//! and `TF_IN_AUTOMATION=1`, captures its output, and logs the command line and how long it
//! took to stderr.
//!
//! ```no_run
//! use terraform_tests::{terraform_versions, example_dir, Terraform};
//!
//! for tf in terraform_versions() {
//!     let terraform = Terraform::new(tf.options(example_dir("basic"))).unwrap();
//!     terraform.init().unwrap();
//!     let plan = terraform.plan().unwrap();
//!     assert!(plan.plan_has_changes(), "{}: {plan}", tf.name);
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::run_with_timeout;
use crate::SETUP_HINT;

/// How long one Terraform command may run before it is killed and the test fails.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One Terraform CLI binary to test with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerraformBinary {
    /// E.g. "Terraform 1.0.3": use it in assertion messages.
    pub name: String,
    pub path: PathBuf,
}

impl TerraformBinary {
    /// Options that run this binary in a copy of `terraform_dir`.
    pub fn options(&self, terraform_dir: impl Into<PathBuf>) -> Options {
        Options::new(&self.path, terraform_dir)
    }
}

/// The Terraform versions to run every test with: Terraform 1.0.3 (`AUTOHEAL_TF_1_0`, always
/// required) and a newer Terraform (`AUTOHEAL_TF_NEW`) when this machine has one.
///
/// Panics, with a hint to run `tools/test`, when the environment from `.tools/env.sh` is
/// missing. Computed once per test process.
pub fn terraform_versions() -> Vec<TerraformBinary> {
    static VERSIONS: OnceLock<Vec<TerraformBinary>> = OnceLock::new();
    VERSIONS.get_or_init(find_terraform_versions).clone()
}

fn find_terraform_versions() -> Vec<TerraformBinary> {
    if std::env::var_os("TF_CLI_CONFIG_FILE").is_none() {
        // Without the CLI config that points at the filesystem mirror, `terraform init` would
        // try the public registry, which this machine cannot reach.
        panic!("TF_CLI_CONFIG_FILE is not set: {SETUP_HINT}");
    }
    let old = std::env::var_os("AUTOHEAL_TF_1_0")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("AUTOHEAL_TF_1_0 is not set: {SETUP_HINT}"));
    let mut versions = vec![describe(&old, "AUTOHEAL_TF_1_0")];
    match std::env::var_os("AUTOHEAL_TF_NEW").filter(|v| !v.is_empty()) {
        Some(new) => versions.push(describe(Path::new(&new), "AUTOHEAL_TF_NEW")),
        None => crate::report_skip(
            "the Terraform tests ran with Terraform 1.0.3 only: AUTOHEAL_TF_NEW is not set (no \
             newer Terraform on this machine)",
        ),
    }
    let names: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
    eprintln!("testing with {}", names.join(" and "));
    versions
}

fn describe(path: &Path, variable: &str) -> TerraformBinary {
    assert!(
        path.is_file(),
        "{variable}={} does not exist: {SETUP_HINT}",
        path.display()
    );
    let out = run_with_timeout(
        Command::new(path)
            .arg("version")
            // Like tools/lib.sh: the version check must not depend on anybody's CLI config.
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{variable}={}: {e:#}", path.display()));
    let version = parse_version(&out.stdout).unwrap_or_else(|| {
        panic!(
            "{variable}={} printed no version: {}",
            path.display(),
            out.stdout
        )
    });
    TerraformBinary {
        name: format!("Terraform {version}"),
        path: path.to_path_buf(),
    }
}

/// "1.0.3" from the first line of `terraform version` ("Terraform v1.0.3").
pub fn parse_version(version_output: &str) -> Option<String> {
    let first = version_output.lines().next()?.trim();
    let v = first.strip_prefix("Terraform v")?;
    let v = v.split_whitespace().next()?;
    v.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| v.to_string())
}

/// What to run and where: Terratest's `terraform.Options`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration directory. It is copied; Terraform never runs in it.
    pub terraform_dir: PathBuf,
    /// `-var name=value` for plan, apply and destroy.
    pub vars: BTreeMap<String, String>,
    /// Extra environment for every command (on top of this process's environment).
    pub env: Vec<(String, String)>,
    pub terraform_binary: PathBuf,
}

impl Options {
    pub fn new(terraform_binary: impl Into<PathBuf>, terraform_dir: impl Into<PathBuf>) -> Self {
        Options {
            terraform_dir: terraform_dir.into(),
            vars: BTreeMap::new(),
            env: Vec::new(),
            terraform_binary: terraform_binary.into(),
        }
    }

    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn with_envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }
}

/// How one Terraform command ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; -1 when it was killed by a signal.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CommandOutput {
    /// With `-detailed-exitcode`, `plan` exits 2 when there are changes.
    pub fn plan_has_changes(&self) -> bool {
        self.exit_code == 2
    }

    /// A `-detailed-exitcode` plan whose only change is creating the one resource `address`
    /// (e.g. `autoheal_instance.app`): what an installed provider must plan for a fresh
    /// one-resource configuration.
    pub fn plans_only_the_creation_of(&self, address: &str) -> bool {
        self.plan_has_changes()
            && self
                .stdout
                .contains(&format!("# {address} will be created"))
            && self
                .stdout
                .contains("Plan: 1 to add, 0 to change, 0 to destroy.")
    }

    /// stdout, then stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// [`CommandOutput::combined`] with every run of whitespace made one space: Terraform
    /// wraps diagnostics at 78 columns, so a message is searched for by its words.
    pub fn words(&self) -> String {
        self.combined()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.exit_code,
            self.duration.as_secs_f64(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A configuration copied into a temporary directory, and the Terraform to run there. The
/// directory is deleted when this is dropped.
pub struct Terraform {
    options: Options,
    /// Keeps the temporary directory alive; `working_dir` is inside it.
    _temp: tempfile::TempDir,
    working_dir: PathBuf,
    applied: AtomicBool,
    timeout: Duration,
    /// Variables set between steps with [`Terraform::set_var`]; they win over `options.vars`.
    /// Behind a lock so a [`DestroyGuard`] (which borrows the Terraform) can stay alive
    /// across steps.
    step_vars: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Terraform {
    /// Copies `options.terraform_dir` into a fresh temporary directory (leaving out anything a
    /// previous Terraform run may have left there: `.terraform/`, the lock file, state).
    pub fn new(options: Options) -> anyhow::Result<Self> {
        let source = &options.terraform_dir;
        anyhow::ensure!(
            source.is_dir(),
            "terraform_dir {} is not a directory",
            source.display()
        );
        let temp = tempfile::Builder::new()
            .prefix("autoheal-tf-")
            .tempdir()
            .context("could not create a temporary directory")?;
        let name = source.file_name().unwrap_or_else(|| "config".as_ref());
        let working_dir = temp.path().join(name);
        copy_config_dir(source, &working_dir)
            .with_context(|| format!("could not copy {}", source.display()))?;
        Ok(Terraform {
            options,
            _temp: temp,
            working_dir,
            applied: AtomicBool::new(false),
            step_vars: std::sync::Mutex::new(BTreeMap::new()),
            timeout: DEFAULT_COMMAND_TIMEOUT,
        })
    }

    /// Where the commands run: the copy of the configuration.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// How long each command may run before it is killed (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether `apply` was run (even if it failed: it may have created something) and no
    /// `destroy` succeeded since.
    pub fn applied(&self) -> bool {
        self.applied.load(Ordering::SeqCst)
    }

    /// `terraform init`.
    pub fn init(&self) -> anyhow::Result<CommandOutput> {
        self.expect(&["init", "-no-color", "-input=false"], &[0], false)
    }

    /// `terraform validate` (it takes no `-input` and no variables).
    pub fn validate(&self) -> anyhow::Result<CommandOutput> {
        self.expect(&["validate", "-no-color"], &[0], false)
    }

    /// `terraform plan -detailed-exitcode`: Ok when it exits 0 (no changes) or 2 (changes).
    pub fn plan(&self) -> anyhow::Result<CommandOutput> {
        self.expect(&Self::PLAN, &[0, 2], true)
    }

    /// `terraform plan -detailed-exitcode` that must fail (exit 1): Ok with its output when it
    /// did, Err when it succeeded.
    pub fn plan_expect_error(&self) -> anyhow::Result<CommandOutput> {
        self.expect(&Self::PLAN, &[1], true)
    }

    const PLAN: [&'static str; 4] = ["plan", "-no-color", "-input=false", "-detailed-exitcode"];

    /// `terraform apply -auto-approve`. Marks this configuration as applied first, so a
    /// [`DestroyGuard`] cleans up even after a half-failed apply.
    pub fn apply(&self) -> anyhow::Result<CommandOutput> {
        self.applied.store(true, Ordering::SeqCst);
        self.expect(&Self::APPLY, &[0], true)
    }

    /// `terraform apply -auto-approve` whatever its exit code, for tests of applies that must
    /// fail (they check the code and the diagnostics themselves).
    pub fn apply_output(&self) -> anyhow::Result<CommandOutput> {
        self.run(&Self::APPLY, true)
    }

    const APPLY: [&'static str; 4] = ["apply", "-no-color", "-input=false", "-auto-approve"];

    /// `terraform destroy -auto-approve`.
    pub fn destroy(&self) -> anyhow::Result<CommandOutput> {
        let out = self.expect(
            &["destroy", "-no-color", "-input=false", "-auto-approve"],
            &[0],
            true,
        )?;
        self.applied.store(false, Ordering::SeqCst);
        Ok(out)
    }

    /// `terraform output -json NAME`, parsed.
    pub fn output(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        let out = self.expect(&["output", "-no-color", "-json", name], &[0], false)?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("output {name} is not JSON:\n{}", out.stdout))
    }

    /// `terraform providers schema -json`, parsed.
    pub fn providers_schema_json(&self) -> anyhow::Result<serde_json::Value> {
        let out = self.expect(&["providers", "schema", "-json"], &[0], false)?;
        serde_json::from_str(&out.stdout).with_context(|| {
            format!(
                "`providers schema -json` printed no JSON:\n{}",
                truncate(&out.stdout, 2000)
            )
        })
    }

    /// Sets (or replaces) a `-var` for the following commands: Terratest's changing
    /// `Vars` between steps of one test.
    pub fn set_var(&self, name: impl Into<String>, value: impl Into<String>) {
        self.step_vars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.into(), value.into());
    }

    /// Drops a step variable set with [`Self::set_var`]: the variable is back to its value in
    /// the options, or its default.
    pub fn unset_var(&self, name: &str) {
        self.step_vars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// `options.vars` with the step variables over them.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = self.options.vars.clone();
        vars.extend(
            self.step_vars
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
        vars
    }

    /// The `-var name=value` arguments of the options, for commands such as `import` whose
    /// options must come before their positional arguments.
    pub fn var_args(&self) -> Vec<String> {
        self.vars()
            .iter()
            .flat_map(|(n, v)| ["-var".to_string(), format!("{n}={v}")])
            .collect()
    }

    /// A guard that runs `destroy` when it goes out of scope, if anything was applied.
    pub fn destroy_guard(&self) -> DestroyGuard<'_> {
        DestroyGuard { terraform: self }
    }

    /// Runs `terraform ARGS` (plus `-var`s when `with_vars`) and requires one of `ok_codes`.
    fn expect(
        &self,
        args: &[&str],
        ok_codes: &[i32],
        with_vars: bool,
    ) -> anyhow::Result<CommandOutput> {
        let out = self.run(args, with_vars)?;
        if !ok_codes.contains(&out.exit_code) {
            bail!("expected exit code {ok_codes:?}: {out}");
        }
        Ok(out)
    }

    /// Runs `terraform ARGS` in the working directory, whatever its exit code. Errs only when
    /// it could not be started or did not finish in time.
    pub fn run(&self, args: &[&str], with_vars: bool) -> anyhow::Result<CommandOutput> {
        let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if with_vars {
            for (name, value) in &self.vars() {
                argv.push("-var".into());
                argv.push(format!("{name}={value}"));
            }
        }
        let binary = &self.options.terraform_binary;
        let command_line = format!("{} {}", binary.display(), argv.join(" "));
        let mut cmd = Command::new(binary);
        cmd.args(&argv)
            .current_dir(&self.working_dir)
            // .terraform/ stays in the working directory, which is what users get.
            .env_remove("TF_DATA_DIR")
            .env_remove("TF_WORKSPACE")
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1");
        for (name, value) in &self.options.env {
            cmd.env(name, value);
        }
        eprintln!(
            "[terraform] $ {command_line}  (in {})",
            self.working_dir.display()
        );
        let captured = run_with_timeout(&mut cmd, self.timeout)
            .with_context(|| format!("`{command_line}` in {}", self.working_dir.display()))?;
        let out = CommandOutput {
            command: command_line,
            exit_code: captured.status.code().unwrap_or(-1),
            stdout: captured.stdout,
            stderr: captured.stderr,
            duration: captured.duration,
        };
        eprintln!(
            "[terraform] {} exited {} after {:.1}s",
            out.command,
            out.exit_code,
            out.duration.as_secs_f64()
        );
        Ok(out)
    }
}

/// Runs `terraform destroy` when dropped, also while a failed test unwinds, if the
/// configuration was applied and not destroyed since. Terratest's `defer terraform.Destroy`.
///
/// A destroy that fails panics, unless the test is already panicking (a second panic would
/// abort the test process): then the failure is printed.
pub struct DestroyGuard<'a> {
    terraform: &'a Terraform,
}

impl<'a> DestroyGuard<'a> {
    pub fn new(terraform: &'a Terraform) -> Self {
        DestroyGuard { terraform }
    }
}

impl Drop for DestroyGuard<'_> {
    fn drop(&mut self) {
        if !self.terraform.applied() {
            return;
        }
        eprintln!(
            "[terraform] cleaning up: destroy in {}",
            self.terraform.working_dir().display()
        );
        if let Err(e) = self.terraform.destroy() {
            if std::thread::panicking() {
                eprintln!("[terraform] destroy after a failed test failed too: {e:#}");
            } else {
                panic!("destroy failed: {e:#}");
            }
        }
    }
}

/// Copies a configuration directory, leaving out Terraform's working files.
fn copy_config_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str == ".terraform"
            || name_str == ".terraform.lock.hcl"
            || name_str.ends_with(".tfstate")
            || name_str.ends_with(".tfstate.backup")
            || name_str.ends_with(".tfplan")
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_config_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A stand-in for the terraform binary: records each command line (and the directory and
    /// TF_IN_AUTOMATION) in $FAKE_TF_LOG, and answers like Terraform would.
    const FAKE_TERRAFORM: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_TF_LOG"
printf 'cwd=%s automation=%s data_dir=%s\n' "$PWD" "$TF_IN_AUTOMATION" "${TF_DATA_DIR:-unset}" >> "$FAKE_TF_LOG"
case "$1" in
  plan) echo "Plan: 1 to add, 0 to change, 0 to destroy."; echo "plan stderr" >&2; exit "${FAKE_TF_PLAN_EXIT:-2}" ;;
  output) echo '{"sensitive":false,"type":"string","value":"203.0.113.10"}' ;;
  providers) echo '{"format_version":"0.2","provider_schemas":{}}' ;;
  destroy) exit "${FAKE_TF_DESTROY_EXIT:-0}" ;;
  hang) exec sleep 30 ;;
esac
exit 0
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        example: PathBuf,
        log: PathBuf,
        binary: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let example = dir.path().join("example");
            std::fs::create_dir_all(example.join("modules/m")).unwrap();
            std::fs::write(example.join("main.tf"), "# main\n").unwrap();
            std::fs::write(example.join("modules/m/main.tf"), "# module\n").unwrap();
            // Leftovers of a Terraform run in the example must not be copied.
            std::fs::create_dir_all(example.join(".terraform/providers")).unwrap();
            std::fs::write(example.join(".terraform.lock.hcl"), "").unwrap();
            std::fs::write(example.join("terraform.tfstate"), "{}").unwrap();
            let binary = dir.path().join("fake-terraform");
            std::fs::write(&binary, FAKE_TERRAFORM).unwrap();
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
            let log = dir.path().join("calls.log");
            Fixture {
                _dir: dir,
                example,
                log,
                binary,
            }
        }

        fn options(&self) -> Options {
            Options::new(&self.binary, &self.example)
                .with_env("FAKE_TF_LOG", self.log.to_str().unwrap())
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with("cwd="))
                .map(str::to_string)
                .collect()
        }

        fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }
    }

    #[test]
    fn copies_the_configuration_without_terraform_leftovers() {
        let f = Fixture::new();
        let tf = Terraform::new(f.options()).unwrap();
        let wd = tf.working_dir();
        assert_ne!(wd, f.example.as_path());
        assert!(!wd.starts_with(&f.example));
        assert_eq!(wd.file_name().unwrap(), "example");
        assert!(wd.join("main.tf").is_file());
        assert!(wd.join("modules/m/main.tf").is_file());
        assert!(!wd.join(".terraform").exists());
        assert!(!wd.join(".terraform.lock.hcl").exists());
        assert!(!wd.join("terraform.tfstate").exists());
        let copy = wd.to_path_buf();
        drop(tf);
        assert!(!copy.exists(), "the copy is deleted with the Terraform");
        assert!(
            f.example.join("main.tf").is_file(),
            "the source is untouched"
        );
    }

    #[test]
    fn runs_commands_with_the_automation_flags_in_the_copy() {
        let f = Fixture::new();
        let tf = Terraform::new(
            f.options()
                .with_var("subnet_id", "subnet-0123456789abcdef0")
                .with_var("name", "a b"),
        )
        .unwrap();
        tf.init().unwrap();
        tf.validate().unwrap();
        let plan = tf.plan().unwrap();
        assert_eq!(plan.exit_code, 2);
        assert!(plan.plan_has_changes());
        assert!(plan.stdout.contains("Plan: 1 to add"), "{plan}");
        assert_eq!(plan.stderr, "plan stderr\n");
        let ip = tf.output("public_ip").unwrap();
        assert_eq!(ip["value"], "203.0.113.10");
        let schema = tf.providers_schema_json().unwrap();
        assert_eq!(schema["format_version"], "0.2");
        assert_eq!(
            f.calls(),
            [
                "init -no-color -input=false",
                "validate -no-color",
                "plan -no-color -input=false -detailed-exitcode -var name=a b -var subnet_id=subnet-0123456789abcdef0",
                "output -no-color -json public_ip",
                "providers schema -json",
            ]
        );
        let expected = format!(
            "cwd={} automation=1 data_dir=unset",
            tf.working_dir().display()
        );
        let log = f.log();
        assert_eq!(log.matches(&expected).count(), 5, "{log}");
    }

    #[test]
    fn plan_outcomes_follow_the_detailed_exit_code() {
        let f = Fixture::new();
        let no_changes = Terraform::new(f.options().with_env("FAKE_TF_PLAN_EXIT", "0")).unwrap();
        let out = no_changes.plan().unwrap();
        assert!(!out.plan_has_changes());
        assert!(no_changes.plan_expect_error().is_err());

        let failing = Terraform::new(f.options().with_env("FAKE_TF_PLAN_EXIT", "1")).unwrap();
        let err = format!("{:#}", failing.plan().unwrap_err());
        assert!(err.contains("exited 1"), "{err}");
        assert!(
            err.contains("Plan: 1 to add"),
            "the error carries stdout: {err}"
        );
        assert!(
            err.contains("plan stderr"),
            "the error carries stderr: {err}"
        );
        assert_eq!(failing.plan_expect_error().unwrap().exit_code, 1);

        let changes = Terraform::new(f.options()).unwrap();
        assert!(changes.plan_expect_error().is_err());
    }

    #[test]
    fn destroy_guard_destroys_after_apply_even_when_the_test_panics() {
        let f = Fixture::new();
        let tf = Terraform::new(f.options().with_var("name", "x")).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _guard = tf.destroy_guard();
            tf.apply().unwrap();
            panic!("the test failed after apply");
        }));
        assert!(result.is_err());
        assert_eq!(
            f.calls(),
            [
                "apply -no-color -input=false -auto-approve -var name=x",
                "destroy -no-color -input=false -auto-approve -var name=x",
            ]
        );
        assert!(!tf.applied());
    }

    #[test]
    fn destroy_guard_does_nothing_when_nothing_was_applied_or_it_was_destroyed() {
        let f = Fixture::new();
        let tf = Terraform::new(f.options()).unwrap();
        {
            let _guard = DestroyGuard::new(&tf);
            tf.plan().unwrap();
        }
        assert_eq!(
            f.calls(),
            ["plan -no-color -input=false -detailed-exitcode"]
        );
        {
            let _guard = DestroyGuard::new(&tf);
            tf.apply().unwrap();
            tf.destroy().unwrap();
        }
        let calls = f.calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("destroy")).count(),
            1,
            "{calls:?}"
        );
    }

    #[test]
    fn a_failing_destroy_in_the_guard_fails_the_test() {
        let f = Fixture::new();
        let tf = Terraform::new(f.options().with_env("FAKE_TF_DESTROY_EXIT", "1")).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _guard = tf.destroy_guard();
            tf.apply().unwrap();
        }));
        let panic = result.unwrap_err();
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("destroy failed"), "{msg}");
        assert!(tf.applied(), "still applied: the destroy did not succeed");
    }

    #[test]
    fn a_hanging_command_is_killed() {
        let f = Fixture::new();
        let mut tf = Terraform::new(f.options()).unwrap();
        tf.set_timeout(Duration::from_millis(300));
        let err = format!("{:#}", tf.run(&["hang"], false).unwrap_err());
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn parses_terraform_version_output() {
        assert_eq!(
            parse_version("Terraform v1.0.3\non linux_amd64\n").as_deref(),
            Some("1.0.3")
        );
        assert_eq!(
            parse_version("Terraform v1.11.4\non linux_amd64\n").as_deref(),
            Some("1.11.4")
        );
        assert_eq!(parse_version("OpenTofu v1.8.0"), None);
        assert_eq!(parse_version(""), None);
    }
}
