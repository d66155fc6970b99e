//! The acceptance tests that need no control of the local AWS, run against a real AWS account
//! when, and only when, one is configured explicitly:
//!
//! ```text
//! AUTOHEAL_REAL_AWS=1                      # the opt-in itself
//! AUTOHEAL_REAL_AWS_REGION=eu-west-1       # where everything is made
//! AUTOHEAL_REAL_AWS_PREFIX=ahci            # every stack is <prefix>-<test>: ^[a-z][a-z0-9-]{1,14}$
//! AUTOHEAL_REAL_AWS_AMI=ami-...            # an Amazon Linux 2023 x86_64 AMI of that region
//! AUTOHEAL_REAL_AWS_AZ=eu-west-1b          # optional, default <region>a
//! ```
//!
//! plus credentials from the SDK's usual chain (environment, profile, SSO, ...). No endpoint
//! override is allowed: with `AWS_ENDPOINT_URL` (or a service's `AWS_ENDPOINT_URL_*`) set, or
//! an `endpoint_url` in the profile, it refuses to run, so a local endpoint is never taken for
//! an account. Some but not all of the three required variables set is an error too (a
//! typo must not silently skip, nor half-configure); none set is "not configured": each test
//! says on stderr it is skipped and how to run it, passes, and the tools/test summary lists
//! [`SKIP_LINE`] (through `$AUTOHEAL_SKIP_FILE`, [`crate::record_skip`]).
//!
//! Everything a run makes is found again by [`Scope::real_account`]: the `autoheal:stack` tag
//! with a value starting `<prefix>-` **and** a name starting `<prefix>-` (both required; IAM
//! roles also under `/autoheal/`). A test sweeps its own stack (`<prefix>-<test>`) before it
//! starts (leftovers of a run that crashed) and after it ends; `sweep-real-account` (in
//! `src/bin/`) sweeps the whole prefix, `--dry-run` to list only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use aws_config::{BehaviorVersion, Region};

use crate::local_aws::Clients;
use crate::sweeper::{Scope, SweepOptions, SweepReport, Sweeper};
use crate::{Options, Terraform, TerraformBinary};

/// `1` opts in (`0` or unset: not configured).
pub const ENABLE_VAR: &str = "AUTOHEAL_REAL_AWS";
pub const REGION_VAR: &str = "AUTOHEAL_REAL_AWS_REGION";
pub const PREFIX_VAR: &str = "AUTOHEAL_REAL_AWS_PREFIX";
pub const AMI_VAR: &str = "AUTOHEAL_REAL_AWS_AMI";
/// Optional: the availability zone (default `<region>a`).
pub const AZ_VAR: &str = "AUTOHEAL_REAL_AWS_AZ";

/// The longest prefix: `<prefix>-<test>` must fit the provider's 32-character `name`.
pub const PREFIX_MAX_LEN: usize = 15;

/// How long one Terraform command may take in a real account (a create waits for the
/// group's first instance, the hook and the Lambda: minutes).
pub const REAL_COMMAND_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// What the tools/test summary lists when no account is configured (one line, whichever
/// test says it).
pub const SKIP_LINE: &str = "real account: not configured (the real-AWS tests of \
     tests/real_account.rs did not run; how to run them: CONTRIBUTING.md, \"Running against a \
     real account\")";

/// How to run the tests against an account, for the skip message.
pub const HOW_TO_RUN: &str = "AUTOHEAL_REAL_AWS=1 AUTOHEAL_REAL_AWS_REGION=<region> \
     AUTOHEAL_REAL_AWS_PREFIX=<prefix, ^[a-z][a-z0-9-]{1,14}$> AUTOHEAL_REAL_AWS_AMI=<an Amazon \
     Linux 2023 x86_64 AMI id of the region> [AUTOHEAL_REAL_AWS_AZ=<zone, default <region>a>] \
     with AWS credentials in the usual chain and AWS_ENDPOINT_URL unset, then `cargo test \
     --release -p terraform-tests --test real_account` (costs: CONTRIBUTING.md, \"Running \
     against a real account\")";

/// The account configuration the opt-in names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealAccount {
    pub region: String,
    pub prefix: String,
    /// Empty when parsed for the sweeper only ([`parse_for_sweep`]).
    pub ami: String,
    pub availability_zone: String,
}

/// What the tests need ([`parse`]), or the sweeper (no AMI, no zone: [`parse_for_sweep`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Tests,
    Sweep,
}

/// Reads the opt-in from `env` (the process environment, or a test's map): `Ok(None)` when
/// it is not configured (none of [`ENABLE_VAR`], [`REGION_VAR`], [`PREFIX_VAR`], [`AMI_VAR`]
/// set, or [`ENABLE_VAR`]=`0`), `Err` with what to fix when it is half configured, invalid,
/// or an endpoint override is set.
pub fn parse(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Option<RealAccount>, String> {
    parse_as(env, Need::Tests)
}

/// [`parse`] for the sweeper, which needs neither the AMI nor the zone.
pub fn parse_for_sweep(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Option<RealAccount>, String> {
    parse_as(env, Need::Sweep)
}

fn parse_as(
    env: impl IntoIterator<Item = (String, String)>,
    need: Need,
) -> Result<Option<RealAccount>, String> {
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let get = |name: &str| env.get(name).map(|v| v.trim().to_string());
    let enabled = match get(ENABLE_VAR).as_deref() {
        None => false,
        Some("0") => return Ok(None),
        Some("1") => true,
        Some(other) => {
            return Err(format!(
                "{ENABLE_VAR}={other:?}: set it to 1 to run the tests against a real AWS \
                 account, or unset it; {HOW_TO_RUN}"
            ))
        }
    };
    let mut required = vec![REGION_VAR, PREFIX_VAR];
    if need == Need::Tests {
        required.push(AMI_VAR);
    }
    let set: Vec<&str> = required
        .iter()
        .copied()
        .filter(|v| get(v).is_some())
        .collect();
    if !enabled {
        if set.is_empty() && get(AZ_VAR).is_none() {
            return Ok(None);
        }
        let mut named: Vec<&str> = set.clone();
        if get(AZ_VAR).is_some() {
            named.push(AZ_VAR);
        }
        return Err(format!(
            "{} set but not {ENABLE_VAR}=1: nothing runs against a real account without it \
             (set it, or unset {}); {HOW_TO_RUN}",
            named.join(", "),
            named.join(", ")
        ));
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|v| get(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{ENABLE_VAR}=1 but {} not set; {HOW_TO_RUN}",
            missing.join(", ")
        ));
    }
    let overrides: Vec<&str> = env
        .keys()
        .filter(|k| k.starts_with("AWS_ENDPOINT_URL"))
        .map(String::as_str)
        .collect();
    if !overrides.is_empty() {
        return Err(format!(
            "{ENABLE_VAR}=1 with {} set: a real account is reached through AWS's own \
             endpoints only, so an endpoint override (a local AWS?) is refused; unset it",
            overrides.join(", ")
        ));
    }
    let region = get(REGION_VAR).unwrap_or_default();
    check_region(&region)?;
    let prefix = get(PREFIX_VAR).unwrap_or_default();
    check_prefix(&prefix)?;
    let (ami, availability_zone) = match need {
        Need::Sweep => (String::new(), String::new()),
        Need::Tests => {
            let ami = get(AMI_VAR).unwrap_or_default();
            check_ami(&ami)?;
            let az = get(AZ_VAR).unwrap_or_else(|| format!("{region}a"));
            let zone_letter = az.strip_prefix(region.as_str()).unwrap_or_default();
            if zone_letter.len() != 1 || !zone_letter.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(format!(
                    "{AZ_VAR}={az:?}: expected a zone of {region}, such as {region}a"
                ));
            }
            (ami, az)
        }
    };
    Ok(Some(RealAccount {
        region,
        prefix,
        ami,
        availability_zone,
    }))
}

/// `^[a-z][a-z0-9-]{1,14}$`, not ending with `-` (the tests add one).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = (2..=PREFIX_MAX_LEN).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !prefix.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{PREFIX_VAR}={prefix:?}: expected 2 to {PREFIX_MAX_LEN} characters, a lowercase \
             letter then lowercase letters, digits or '-' (not last): ^[a-z][a-z0-9-]{{1,14}}$"
        ))
    }
}

/// A region name such as `eu-west-1` or `ap-southeast-2`.
pub fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = region.len() <= 16
        && parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && {
            let number = parts[parts.len() - 1];
            !number.is_empty() && number.len() <= 2 && number.chars().all(|c| c.is_ascii_digit())
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{REGION_VAR}={region:?}: expected a region name such as eu-west-1"
        ))
    }
}

/// `ami-` and 8 or 17 hex digits.
pub fn check_ami(ami: &str) -> Result<(), String> {
    let ok = ami.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{AMI_VAR}={ami:?}: expected an AMI id (ami-0123456789abcdef0) of an Amazon Linux \
             2023 x86_64 image in the region"
        ))
    }
}

/// The process environment as pairs (variables that are not UTF-8 are left out: none of
/// ours can be).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The configuration the real-account tests apply: `fixtures/real_account`, the stack
/// fixture with the region, zone and AMI as variables.
pub fn real_account_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/real_account")
}

/// Options for a copy of [`real_account_fixture`] with one stack per name.
pub fn fixture_options(
    tf: &TerraformBinary,
    names: &[&str],
    region: &str,
    availability_zone: &str,
    ami: &str,
) -> Options {
    let names = serde_json::to_string(names).expect("names as JSON");
    tf.options(real_account_fixture())
        .with_var("names", names)
        .with_var("region", region)
        .with_var("availability_zone", availability_zone)
        .with_var("ami", ami)
        .with_env("AWS_REGION", region)
}

impl RealAccount {
    /// The opt-in of this process's environment ([`parse`]).
    pub fn from_env() -> Result<Option<Self>, String> {
        parse(process_env())
    }

    /// The account for test `test`, or `None` after saying on stderr that it is skipped and
    /// how to run it (and recording [`SKIP_LINE`] for the tools/test summary). Panics when
    /// the opt-in is half configured or invalid: that is a mistake to fix, not a skip.
    pub fn for_test(test: &str) -> Option<Self> {
        match Self::from_env() {
            Ok(Some(account)) => Some(account),
            Ok(None) => {
                eprintln!(
                    "SKIPPED {test}: no real AWS account configured (it passes without running); \
                     to run it: {HOW_TO_RUN}"
                );
                crate::record_skip(SKIP_LINE);
                None
            }
            Err(message) => panic!("{test}: {message}"),
        }
    }

    /// The stack a test makes: `<prefix>-<test>`, within the provider's 32 characters.
    pub fn stack_name(&self, test: &str) -> String {
        let name = format!("{}-{test}", self.prefix);
        assert!(
            name.len() <= 32,
            "stack name {name:?} is longer than 32 characters: use a shorter {PREFIX_VAR}"
        );
        name
    }

    /// Everything the tests make under the prefix ([`Scope::real_account`]).
    pub fn scope(&self) -> Scope {
        Scope::real_account(&self.prefix)
    }

    /// SDK clients for the account: the region, the usual credential chain, AWS's own
    /// endpoints (refused if the profile configures one).
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .load()
            .await;
        if let Some(endpoint) = config.endpoint_url() {
            bail!(
                "the AWS configuration sets the endpoint {endpoint} (an endpoint_url in the \
                 profile?): a real account is reached through AWS's own endpoints only"
            );
        }
        Ok(Clients::from_config(config))
    }

    /// Options for a copy of the real-account fixture with one stack per name in this
    /// account; the provider ignores any endpoint a profile configures.
    pub fn terraform_options(&self, tf: &TerraformBinary, names: &[&str]) -> Options {
        fixture_options(tf, names, &self.region, &self.availability_zone, &self.ami)
            .with_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    }
}

/// One real-account test's world: the account, SDK clients on it and a runtime to drive
/// them. Made by [`RealWorld::start`], which sweeps the test's stack first.
pub struct RealWorld {
    pub account: RealAccount,
    pub clients: Clients,
    pub rt: tokio::runtime::Runtime,
    /// `<prefix>-<test>`.
    pub stack: String,
}

impl RealWorld {
    /// The world of test `test` (stack `<prefix>-<test>`): what a crashed earlier run left
    /// of that stack is swept first.
    pub fn start(account: RealAccount, test: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let clients = rt
            .block_on(account.clients())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let stack = account.stack_name(test);
        let world = RealWorld {
            account,
            clients,
            rt,
            stack,
        };
        let report = world.sweep();
        if !report.found.is_empty() {
            eprintln!(
                "swept {} object(s) a previous run left of {}",
                report.found.len(),
                world.stack
            );
        }
        world
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A copy of the fixture with this test's stack, initialised.
    pub fn terraform(&self, tf: &TerraformBinary) -> Terraform {
        let options = self.account.terraform_options(tf, &[self.stack.as_str()]);
        let mut t = Terraform::new(options).expect("a copy of the real-account fixture");
        t.set_timeout(REAL_COMMAND_TIMEOUT);
        t.init()
            .unwrap_or_else(|e| panic!("{}: init: {e:#}", tf.name));
        t
    }

    /// The sweeper of this test's stack: its tag value and names start with the stack name
    /// (and so with `<prefix>-`). No test's name starts with another's, so a test never
    /// sweeps another's stack.
    pub fn sweeper(&self) -> Sweeper {
        Sweeper::new(&self.clients, Scope::strict(&self.stack))
    }

    /// Deletes whatever is left of this test's stack; panics if something survives.
    pub fn sweep(&self) -> SweepReport {
        self.block(self.sweeper().delete_all(&SweepOptions::real_account()))
            .unwrap_or_else(|e| panic!("sweeping {}: {e:#}", self.stack))
    }
}

/// Sweeps the test's stack when dropped (also while a failed test unwinds), after its
/// Terraform destroy guard: declare it before the guard.
pub struct SweepGuard<'a>(pub &'a RealWorld);

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        let result = self
            .0
            .block(self.0.sweeper().delete_all(&SweepOptions::real_account()));
        match result {
            Ok(report) if !report.found.is_empty() => eprintln!(
                "swept {} object(s) of {}: {}",
                report.found.len(),
                self.0.stack,
                report
                    .found
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(_) => {}
            Err(e) if std::thread::panicking() => eprintln!(
                "sweeping {} after a failed test failed too: {e:#}; run the sweeper: cargo run \
                 --release -p terraform-tests --bin sweep-real-account",
                self.0.stack
            ),
            Err(e) => panic!(
                "sweeping {}: {e:#}; run the sweeper: cargo run --release -p terraform-tests \
                 --bin sweep-real-account",
                self.0.stack
            ),
        }
    }
}
