//! Reliability under faults: the real Terraform CLI, the real provider (from the mirror) and
//! the real attachment Lambda against the local AWS, pushed harder than the acceptance tests.
//!
//! * [`chaos_heal_soak`]: one stack; its serving instance is killed again and again
//!   (TerminateInstances, as an instance dying looks to AWS), some kills landing while the
//!   previous heal is still in progress (the replacement in `Pending:Wait`, its Lambda
//!   attaching). After each kill the stack must settle within a bound; every poll checks the
//!   invariants (volume on at most one instance and never on a terminated one, address never
//!   on a terminated one).
//! * [`throttling_storm`]: 30% of all AWS calls throttled and 5% answering 5xx (each
//!   service's own codes) while ten stacks (`for_each`) are applied, updated (tags and
//!   instance type: a rolling replacement through the heal path) and destroyed.
//! * [`concurrent_stacks_do_not_cross_talk`]: five stacks applied, healed and destroyed in
//!   parallel by separate Terraform runs against one local AWS; every call each Lambda made
//!   (the local AWS names the function behind each call, as CloudTrail does) touches only its
//!   own stack's objects.
//!
//! Each ends with the sweeper: nothing but the final snapshots. Each prints one line starting
//! with `RELIABILITY` with its figures (tools/soak collects them; RELIABILITY.md records them).
//! The defaults are the bounded versions `cargo test` runs; environment variables scale them:
//! `AUTOHEAL_SOAK_KILLS` (20), `AUTOHEAL_SOAK_SEED` (random, printed), `AUTOHEAL_STORM_STACKS`
//! (10), `AUTOHEAL_CONCURRENT_STACKS` (5).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use serde_json::Value as Json;
use terraform_tests::local_aws::control::{Call, Fault};
use terraform_tests::local_aws::helpers::{err_text, group_instances, parse_utc, GroupInstance};
use terraform_tests::local_aws::Clients;
use terraform_tests::stack_world;
use terraform_tests::sweeper::Sweeper;
use terraform_tests::{
    provider_binary, provider_version, terraform_versions, Terraform, TerraformBinary,
    PROVIDER_ADDRESS,
};

/// The local AWS's clock scale for these tests: the hook's 300 s heartbeat timeout is 6 s, a
/// volume's 2 s detach 40 ms, Lambda's 60 s retry delay 1.2 s.
const CLOCK_SCALE: f64 = 0.02;
/// The access key the provider signs with: the local AWS's call log tells its calls from the
/// test's own (which sign with `test`) and from the Lambdas' (which it names).
const PROVIDER_ACCESS_KEY: &str = "AKIAPROVIDERUNDERTEST";
/// How long one Terraform command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// One test's world: the stack tests' (a local AWS, SDK clients on it, a runtime for them)
/// and a private copy of the provider's mirror.
struct World {
    base: stack_world::World,
    mirror: PrivateMirror,
}

impl std::ops::Deref for World {
    type Target = stack_world::World;
    fn deref(&self) -> &stack_world::World {
        &self.base
    }
}

/// The provider installed in the mirror, copied to a mirror of this test's own with a CLI
/// configuration pointing at it: the provider may be republished to the shared mirror while
/// a long test runs, and Terraform would then refuse the changed binary ("does not match any
/// of the checksums recorded in the dependency lock file") halfway through.
struct PrivateMirror {
    dir: tempfile::TempDir,
}

impl PrivateMirror {
    fn new() -> PrivateMirror {
        let dir = tempfile::Builder::new()
            .prefix("reliability-mirror-")
            .tempdir()
            .unwrap();
        let version = provider_version();
        let platform = dir
            .path()
            .join("mirror")
            .join(PROVIDER_ADDRESS)
            .join(&version)
            .join("linux_amd64");
        std::fs::create_dir_all(&platform).unwrap();
        let binary = platform.join(format!("terraform-provider-autoheal_v{version}"));
        std::fs::copy(provider_binary(), &binary).unwrap();
        let rc = format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    \
             include = [\"{PROVIDER_ADDRESS}\"]\n  }}\n  direct {{\n    exclude = \
             [\"{PROVIDER_ADDRESS}\"]\n  }}\n}}\n",
            dir.path().join("mirror").display().to_string()
        );
        std::fs::write(dir.path().join("terraformrc"), rc).unwrap();
        PrivateMirror { dir }
    }

    fn cli_config(&self) -> String {
        self.dir.path().join("terraformrc").display().to_string()
    }
}

impl World {
    fn start() -> World {
        World {
            base: stack_world::World::start(CLOCK_SCALE),
            mirror: PrivateMirror::new(),
        }
    }

    /// A copy of the fixture with one `autoheal_instance` per name, initialised, the provider
    /// from this test's mirror signing with [`PROVIDER_ACCESS_KEY`].
    fn terraform(
        &self,
        tf: &TerraformBinary,
        names: &[String],
        env: &[(&str, String)],
    ) -> Terraform {
        let mut all = vec![
            ("AWS_ACCESS_KEY_ID", PROVIDER_ACCESS_KEY.to_string()),
            ("TF_CLI_CONFIG_FILE", self.mirror.cli_config()),
        ];
        all.extend(env.iter().cloned());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.base.terraform_with(tf, &names, &all, COMMAND_TIMEOUT)
    }

    /// What is left of stack `name`: only its final snapshot may be (returns the leftovers
    /// that are not, for the report).
    fn leaked(&self, name: &str) -> Vec<String> {
        let left = self
            .block(Sweeper::for_stack(&self.clients, name).leftovers())
            .unwrap_or_else(|e| panic!("sweeping {name}: {e:#}"));
        let finals = left.iter().filter(|l| l.final_snapshot).count();
        let mut leaked: Vec<String> = left
            .iter()
            .filter(|l| !l.final_snapshot)
            .map(|l| format!("{name}: {l}"))
            .collect();
        if finals != 1 {
            leaked.push(format!("{name}: {finals} final snapshots instead of 1"));
        }
        leaked
    }
}

fn newest() -> TerraformBinary {
    terraform_versions().last().unwrap().clone()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        _ => default,
    }
}

/// The `stacks` output: name -> attributes.
fn stacks(t: &Terraform) -> BTreeMap<String, Json> {
    let out = t.output("stacks").expect("output stacks");
    out.as_object()
        .expect("stacks is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn attr(stack: &Json, key: &str) -> String {
    stack[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {stack}"))
        .to_string()
}

// --- seeded randomness and percentiles ----------------------------------------------------

/// SplitMix64: a tiny, well-mixed generator; the same seed gives the same schedule.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// `$var` if set, else a seed from the clock (printed by the caller so a run can be repeated).
fn seed(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a whole number")),
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// The nearest-rank percentile of sorted durations (`p` in 0..=100).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// --- chaos soak -----------------------------------------------------------------------------

/// What one look at the stack found. The instances are looked at first, then the group, the
/// volume and the address, so an instance seen terminated was terminated before the volume
/// and the address were looked at.
#[derive(Debug, Clone)]
struct Look {
    at: Instant,
    /// EC2 state of the instances that could hold the volume or the address (see
    /// [`Watcher::look`]), looked at before everything else.
    states: BTreeMap<String, String>,
    group: Vec<GroupInstance>,
    /// The volume's attachments: (instance, state).
    attachments: Vec<(String, String)>,
    address_on: Option<String>,
}

impl Look {
    /// The serving instance, when the stack is whole: the group is exactly one `InService`
    /// instance (none waiting in `Pending:Wait`) holding the volume (`attached`) and the
    /// address.
    fn settled(&self) -> Option<String> {
        let [one] = self.group.as_slice() else {
            return None;
        };
        let attached_here = matches!(
            self.attachments.as_slice(),
            [(i, s)] if *i == one.id && s == "attached"
        );
        (one.lifecycle_state == "InService"
            && attached_here
            && self.address_on.as_deref() == Some(one.id.as_str()))
        .then(|| one.id.clone())
    }

    /// The group's instance that is neither killed nor on its way out.
    fn live_instance(&self, killed: &BTreeSet<String>) -> Option<&GroupInstance> {
        self.group.iter().find(|i| {
            !killed.contains(&i.id)
                && !i.lifecycle_state.starts_with("Terminat")
                && self.states.get(&i.id).map(String::as_str) != Some("terminated")
        })
    }

    /// Broken invariants: the volume on two instances, the volume or the address on an
    /// instance that was already terminated when this look began.
    fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let holding: Vec<&(String, String)> = self
            .attachments
            .iter()
            .filter(|(_, s)| s != "detaching" && s != "detached")
            .collect();
        if holding.len() > 1 {
            out.push(format!("volume attached to two instances: {holding:?}"));
        }
        for (i, s) in &holding {
            if self.states.get(i).map(String::as_str) == Some("terminated") {
                out.push(format!("volume {s} to terminated instance {i}"));
            }
        }
        if let Some(i) = &self.address_on {
            if self.states.get(i).map(String::as_str) == Some("terminated") {
                out.push(format!("address associated with terminated instance {i}"));
            }
        }
        out
    }

    fn describe(&self) -> String {
        format!(
            "group [{}], volume {:?}, address on {:?}",
            self.group
                .iter()
                .map(|i| format!("{} {}", i.id, i.lifecycle_state))
                .collect::<Vec<_>>()
                .join(", "),
            self.attachments,
            self.address_on
        )
    }
}

/// The stack under the soak.
struct Target {
    group: String,
    volume: String,
    allocation: String,
}

/// A heal that began with a kill and has not settled yet.
struct OpenHeal {
    killed_at: Instant,
    victim: String,
}

/// Polls the stack, checking the invariants on every look, and keeps the heal records.
struct Watcher<'a> {
    clients: &'a Clients,
    target: Target,
    looks: u64,
    violations: Vec<String>,
    open: Option<OpenHeal>,
    /// Heals seen settled by a look: kill -> the first look that saw the stack whole.
    healed: Vec<Duration>,
    last: Option<Look>,
    /// The last few instances killed (newest last).
    recent_victims: Vec<String>,
}

const POLL_INTERVAL: Duration = Duration::from_millis(25);

impl<'a> Watcher<'a> {
    async fn look(&mut self) -> anyhow::Result<Look> {
        let ec2 = &self.clients.ec2;
        let at = Instant::now();
        // The instances that can hold the volume or the address: those of the group and the
        // holders at the last look, and the last victims. Not every instance: EC2 keeps the
        // terminated ones listed, and describing hundreds of them on every poll would slow
        // the local AWS (one process) and so the heals being measured.
        let mut ids: BTreeSet<String> = self.recent_victims.iter().cloned().collect();
        if let Some(last) = &self.last {
            ids.extend(last.group.iter().map(|i| i.id.clone()));
            ids.extend(last.attachments.iter().map(|(i, _)| i.clone()));
            ids.extend(last.address_on.iter().cloned());
        }
        let mut states = BTreeMap::new();
        if !ids.is_empty() {
            let out = ec2
                .describe_instances()
                .set_instance_ids(Some(ids.into_iter().collect()))
                .send()
                .await
                .map_err(|e| anyhow!("DescribeInstances: {}", err_text(&e)))?;
            states = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| {
                    Some((
                        i.instance_id()?.to_string(),
                        i.state()?.name()?.as_str().to_string(),
                    ))
                })
                .collect();
        }
        // Then the group, the volume and the address, together.
        let (group, v, a) = tokio::join!(
            group_instances(&self.clients.autoscaling, &self.target.group),
            ec2.describe_volumes()
                .volume_ids(&self.target.volume)
                .send(),
            ec2.describe_addresses()
                .allocation_ids(&self.target.allocation)
                .send(),
        );
        let group = group?;
        let v = v.map_err(|e| anyhow!("DescribeVolumes: {}", err_text(&e)))?;
        let attachments = v
            .volumes()
            .first()
            .context("the volume is gone")?
            .attachments()
            .iter()
            .map(|a| {
                (
                    a.instance_id().unwrap_or_default().to_string(),
                    a.state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let a = a.map_err(|e| anyhow!("DescribeAddresses: {}", err_text(&e)))?;
        let address_on = a
            .addresses()
            .first()
            .context("the address is gone")?
            .instance_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let look = Look {
            at,
            states,
            group,
            attachments,
            address_on,
        };
        self.looks += 1;
        for v in look.violations() {
            eprintln!("INVARIANT BROKEN: {v} ({})", look.describe());
            self.violations.push(v);
        }
        if let Some(id) = look.settled() {
            if let Some(open) = self.open.take_if(|o| o.victim != id) {
                let took = look.at.saturating_duration_since(open.killed_at);
                eprintln!(
                    "heal {}: {} killed, {id} serving after {} ms",
                    self.healed.len() + 1,
                    open.victim,
                    ms(took)
                );
                self.healed.push(took);
            }
        }
        self.last = Some(look.clone());
        Ok(look)
    }

    /// Looks every [`POLL_INTERVAL`] until `want` says yes; `Err` with the last look after
    /// `timeout`.
    async fn until<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&Look) -> Option<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut last_error = None;
        loop {
            match self.look().await {
                Ok(look) => {
                    if let Some(v) = want(&look) {
                        return Ok(v);
                    }
                }
                Err(e) => last_error = Some(format!("{e:#}")),
            }
            if started.elapsed() >= timeout {
                anyhow::bail!(
                    "no {what} within {timeout:?}; last look: {}; last error: {last_error:?}",
                    self.last.as_ref().map_or("none".into(), Look::describe)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Keeps looking (and checking) for `span`.
    async fn watch_for(&mut self, span: Duration) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            let _ = self.look().await;
            tokio::time::sleep(POLL_INTERVAL.min(end.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    async fn kill(&mut self, victim: &str) -> anyhow::Result<()> {
        self.clients
            .ec2
            .terminate_instances()
            .instance_ids(victim)
            .send()
            .await
            .map_err(|e| anyhow!("TerminateInstances {victim}: {}", err_text(&e)))?;
        self.recent_victims.push(victim.to_string());
        if self.recent_victims.len() > 3 {
            self.recent_victims.remove(0);
        }
        self.open = Some(OpenHeal {
            killed_at: Instant::now(),
            victim: victim.to_string(),
        });
        Ok(())
    }
}

/// A heal must settle within this much of the local AWS's time (one hook heartbeat timeout,
/// 300 s, plus one Lambda retry delay, 60 s: a heal that needs more relied on a timeout)...
const HEAL_BOUND_AWS_SECONDS: f64 = 360.0;
/// ...plus this much real time for what the scaled clock does not shrink: Lambda processes
/// starting, HTTP round trips, a loaded 2-core machine.
const HEAL_BOUND_REAL: Duration = Duration::from_secs(10);
/// The share of kills aimed at a heal still in progress.
const MID_HEAL_SHARE: f64 = 0.5;

const STAGE_DONE: &str = "5 lifecycle action completed (InService)";

/// How far the heal of `victim` had got when it was killed, from the local AWS's call log:
/// the calls that finished before the TerminateInstances that killed it.
fn stage_at_kill(calls: &[Call], victim: &str) -> &'static str {
    let names_victim = |c: &Call| {
        let mut values = Vec::new();
        param_strings(&c.params, &mut values);
        values.iter().any(|v| v == victim)
    };
    let Some(kill) = calls
        .iter()
        .find(|c| c.operation == "TerminateInstances" && c.function.is_none() && names_victim(c))
    else {
        return "unknown (no TerminateInstances in the call log)";
    };
    let by_lambda_before = |operation: Option<&str>| {
        calls.iter().any(|c| {
            c.seq < kill.seq
                && c.function.is_some()
                && operation.is_none_or(|o| c.operation == o && c.succeeded())
                && names_victim(c)
        })
    };
    if by_lambda_before(Some("CompleteLifecycleAction")) {
        STAGE_DONE
    } else if by_lambda_before(Some("AssociateAddress")) {
        "4 address associated, action not completed"
    } else if by_lambda_before(Some("AttachVolume")) {
        "3 volume attach accepted, address not yet"
    } else if by_lambda_before(None) {
        "2 Lambda running, volume not attached yet"
    } else {
        "1 Pending:Wait, before its Lambda's first call"
    }
}

/// One kill's heal in the local AWS's call log.
#[derive(Debug, Clone, Copy)]
struct Heal {
    /// The test's TerminateInstances of the victim.
    kill_seq: u64,
    /// The next successful CompleteLifecycleAction CONTINUE by a Lambda (the handler sends it
    /// only after it has seen the volume attached and the address associated).
    continue_seq: u64,
    took: Duration,
}

/// Each kill's heal from the local AWS's call log; `None` when the next kill came before the
/// next CONTINUE (the heal was cut short). Both times are the server's, so the figure carries
/// no polling delay.
fn heals_in(calls: &[Call], victims: &BTreeSet<String>) -> Vec<Option<Heal>> {
    let time = |c: &Call| parse_utc(&c.time).unwrap_or(f64::NAN);
    let kills: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            let mut values = Vec::new();
            param_strings(&c.params, &mut values);
            c.operation == "TerminateInstances"
                && c.function.is_none()
                && values.iter().any(|v| victims.contains(v))
        })
        .collect();
    let continues: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            c.operation == "CompleteLifecycleAction"
                && c.function.is_some()
                && c.succeeded()
                && c.param("LifecycleActionResult") == Some("CONTINUE")
        })
        .collect();
    kills
        .iter()
        .enumerate()
        .map(|(i, kill)| {
            let next_kill = kills.get(i + 1).map_or(u64::MAX, |k| k.seq);
            continues
                .iter()
                .find(|c| c.seq > kill.seq)
                .filter(|c| c.seq < next_kill)
                .map(|c| Heal {
                    kill_seq: kill.seq,
                    continue_seq: c.seq,
                    took: Duration::from_secs_f64((time(c) - time(kill)).max(0.0)),
                })
        })
        .collect()
}

/// The calls between a heal's kill and its CONTINUE, one per line with the offset from the
/// kill and who made it: what a slow heal waited for.
fn timeline(calls: &[Call], heal: &Heal) -> String {
    let time = |c: &Call| parse_utc(&c.time).unwrap_or(f64::NAN);
    let Some(kill) = calls.iter().find(|c| c.seq == heal.kill_seq) else {
        return String::new();
    };
    calls
        .iter()
        .filter(|c| c.seq >= heal.kill_seq && c.seq <= heal.continue_seq)
        .filter(|c| c.seq == heal.kill_seq || c.function.is_some())
        .map(|c| {
            let who = match (&c.function, &c.request_id) {
                (Some(_), Some(r)) => format!("lambda {}", &r[..r.len().min(8)]),
                _ => "test".to_string(),
            };
            format!(
                "  +{:>5.0} ms {who:<15} {} {} {}{}",
                (time(c) - time(kill)) * 1000.0,
                c.operation,
                c.params,
                c.status,
                c.error_code
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Heals slower than this have their call timeline printed.
const SLOW_HEAL: Duration = Duration::from_secs(1);

#[test]
fn chaos_heal_soak() {
    let kills = env_number("AUTOHEAL_SOAK_KILLS", 20) as usize;
    let seed = seed("AUTOHEAL_SOAK_SEED");
    eprintln!(
        "chaos soak: {kills} kills, seed {seed} (AUTOHEAL_SOAK_SEED={seed} repeats this schedule \
         of kills and delays; the timing of AWS and the Lambda around it is not repeatable)"
    );
    let mut rng = Rng(seed);
    let bound = Duration::from_secs_f64(HEAL_BOUND_AWS_SECONDS * CLOCK_SCALE) + HEAL_BOUND_REAL;
    let started = Instant::now();
    let world = World::start();
    let tf = newest();
    let t = world.terraform(&tf, &["chaos".to_string()], &[]);
    let _guard = t.destroy_guard();
    t.apply().unwrap_or_else(|e| panic!("apply: {e:#}"));
    let stack = stacks(&t)["chaos"].clone();
    let mut w = Watcher {
        clients: &world.clients,
        target: Target {
            group: "chaos-asg".into(),
            volume: attr(&stack, "volume_id"),
            allocation: attr(&stack, "allocation_id"),
        },
        looks: 0,
        violations: Vec::new(),
        open: None,
        healed: Vec::new(),
        last: None,
        recent_victims: Vec::new(),
    };
    let mut killed: BTreeSet<String> = BTreeSet::new();
    let mut failure: Option<String> = None;
    let soak_started = Instant::now();
    world.block(async {
        if let Err(e) = w
            .until(bound, "served stack after apply", Look::settled)
            .await
        {
            failure = Some(format!("{e:#}"));
            return;
        }
        for k in 0..kills {
            let mid_heal = k > 0 && rng.chance(MID_HEAL_SHARE);
            let delay = Duration::from_millis(rng.below(if mid_heal { 150 } else { 200 }));
            // A settled kill waits for the stack to be whole, keeps watching for the delay and
            // strikes the serving instance. A mid-heal kill waits only for the replacement of
            // the last victim to exist, then strikes it after the delay, wherever its heal is
            // (no look in between: a look takes about as long as the heal's stages).
            let victim = if mid_heal {
                let found = w
                    .until(bound, "replacement", |l| {
                        l.live_instance(&killed).map(|i| i.id.clone())
                    })
                    .await;
                tokio::time::sleep(delay).await;
                found
            } else {
                match w.until(bound, "served stack", Look::settled).await {
                    Ok(_) => {
                        w.watch_for(delay).await;
                        w.until(bound, "instance to kill", |l| {
                            l.live_instance(&killed).map(|i| i.id.clone())
                        })
                        .await
                    }
                    Err(e) => Err(e),
                }
            };
            let victim = match victim {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(format!("before kill {}: {e:#}", k + 1));
                    return;
                }
            };
            eprintln!(
                "kill {}/{kills}: {victim} ({} after {} ms)",
                k + 1,
                if mid_heal { "mid-heal" } else { "settled" },
                ms(delay)
            );
            if let Err(e) = w.kill(&victim).await {
                failure = Some(format!("{e:#}"));
                return;
            }
            killed.insert(victim);
        }
        if let Err(e) = w
            .until(bound, "served stack after the last kill", Look::settled)
            .await
        {
            failure = Some(format!("{e:#}"));
        }
    });
    let soak_time = soak_started.elapsed();
    let control = world.aws.control();
    let (pending_actions, invocations, calls) = world.block(async {
        (
            control.lifecycle_actions().await.unwrap(),
            control.invocations().await.unwrap(),
            control.calls().await.unwrap(),
        )
    });
    let mut stages: BTreeMap<&'static str, u32> = BTreeMap::new();
    for victim in &killed {
        *stages.entry(stage_at_kill(&calls, victim)).or_default() += 1;
    }
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for inv in &invocations {
        let outcome = inv
            .response_json()
            .and_then(|r| r["outcome"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", inv.outcome));
        *outcomes.entry(outcome).or_default() += 1;
    }
    t.destroy().unwrap_or_else(|e| panic!("destroy: {e:#}"));
    let leaked = world.leaked("chaos");

    let times = heals_in(&calls, &killed);
    for heal in times.iter().flatten().filter(|h| h.took > SLOW_HEAL) {
        eprintln!(
            "slow heal ({} ms), the Lambdas' calls from the kill to the CONTINUE:\n{}",
            ms(heal.took),
            timeline(&calls, heal)
        );
    }
    // Fewer than planned when the soak stopped on a failure.
    let done = killed.len();
    let mut heals: Vec<Duration> = times.iter().flatten().map(|h| h.took).collect();
    heals.sort();
    let interrupted = times.iter().filter(|t| t.is_none()).count();
    let too_slow = heals.iter().filter(|t| **t > bound).count();
    let mut observed = w.healed.clone();
    observed.sort();
    eprintln!(
        "RELIABILITY chaos seed={seed} kills_planned={kills} kills={done} kills_mid_heal={} \
         heals_attempted={done} \
         heals_completed={} interrupted={interrupted} over_bound={too_slow} stuck={} \
         p50_ms={} p90_ms={} max_ms={} observed_settled={} observed_p50_ms={} \
         observed_p90_ms={} observed_max_ms={} bound_ms={} looks={} violations={} \
         pending_actions_left={} leaked={} clock_scale={CLOCK_SCALE} soak_s={:.1} total_s={:.1}",
        done as u32 - stages.get(STAGE_DONE).copied().unwrap_or(0),
        heals.len(),
        u32::from(failure.is_some()),
        ms(percentile(&heals, 50.0)),
        ms(percentile(&heals, 90.0)),
        ms(percentile(&heals, 100.0)),
        observed.len(),
        ms(percentile(&observed, 50.0)),
        ms(percentile(&observed, 90.0)),
        ms(percentile(&observed, 100.0)),
        ms(bound),
        w.looks,
        w.violations.len(),
        pending_actions.len(),
        leaked.len(),
        soak_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!("RELIABILITY chaos kills by the victim's stage: {stages:?}");
    eprintln!("RELIABILITY chaos Lambda invocations by outcome: {outcomes:?}");
    assert!(failure.is_none(), "seed {seed}: {}", failure.unwrap());
    assert!(
        w.violations.is_empty(),
        "seed {seed}: invariants broken: {:?}",
        w.violations
    );
    assert_eq!(done, kills, "every planned kill was made");
    assert_eq!(times.len(), kills, "every kill is in the call log");
    assert!(
        times.last().is_some_and(Option::is_some),
        "seed {seed}: the last kill was healed by a Lambda's CONTINUE"
    );
    assert_eq!(
        too_slow, 0,
        "seed {seed}: heals over the bound {bound:?}: {heals:?}"
    );
    assert!(
        pending_actions.is_empty(),
        "seed {seed}: lifecycle actions left pending: {pending_actions:?}"
    );
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

/// Two instances, a volume in their zone and an address, made directly (no stack): the
/// pieces the soak's watcher looks at, for its control case.
async fn control_pieces(c: &Clients) -> (String, String, String, String) {
    let run = c
        .ec2
        .run_instances()
        .image_id("ami-0720cb7af233b0529")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(2)
        .max_count(2)
        .send()
        .await
        .unwrap();
    let (a, b) = match run.instances() {
        [a, b] => (
            a.instance_id().unwrap().to_string(),
            b.instance_id().unwrap().to_string(),
        ),
        other => panic!("two instances: {other:?}"),
    };
    let zone = run.instances()[0]
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap()
        .to_string();
    let volume = c
        .ec2
        .create_volume()
        .availability_zone(zone)
        .size(8)
        .encrypted(true)
        .send()
        .await
        .unwrap();
    let address = c
        .ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    (
        a,
        b,
        volume.volume_id().unwrap().to_string(),
        address.allocation_id().unwrap().to_string(),
    )
}

/// Attaches the volume to `a` then to `b`, associates the address with `b`, terminates `b`,
/// looking after each move; returns what the watcher reported and whether the second attach
/// went through.
async fn violate(c: &Clients, pieces: &(String, String, String, String)) -> (Vec<String>, bool) {
    let (a, b, volume, allocation) = pieces;
    let mut watcher = Watcher {
        clients: c,
        target: Target {
            group: "no-such-group".into(),
            volume: volume.clone(),
            allocation: allocation.clone(),
        },
        looks: 0,
        violations: Vec::new(),
        open: None,
        healed: Vec::new(),
        last: None,
        recent_victims: vec![a.clone(), b.clone()],
    };
    let attach = |instance: &str| {
        c.ec2
            .attach_volume()
            .volume_id(volume)
            .instance_id(instance)
            .device("/dev/sdf")
            .send()
    };
    attach(a).await.unwrap();
    let second = attach(b).await.is_ok();
    watcher.look().await.unwrap();
    c.ec2
        .associate_address()
        .allocation_id(allocation)
        .instance_id(b)
        .send()
        .await
        .unwrap();
    c.ec2
        .terminate_instances()
        .instance_ids(b)
        .send()
        .await
        .unwrap();
    watcher.look().await.unwrap();
    (watcher.violations, second)
}

/// Control case of the chaos soak's invariants. The local AWS refuses what they forbid, as
/// AWS does, so a soak that reports none proves little unless the checker is known to catch
/// them: here the local AWS is deliberately broken (`set_breaks`) to let each violation
/// through, and the soak's own watcher must report all three; with AWS's rules the same moves
/// are refused or undone and it must report none.
#[test]
fn soak_invariant_violations_are_detected() {
    let world = World::start();
    let c = &world.clients;
    world.block(async {
        // The watcher's checks, not AWS's timings, are under test: state changes at once
        // (the fast profile), so each look sees the move just made.
        world
            .aws
            .control()
            .set_profile(&serde_json::json!({"name": "fast"}))
            .await
            .unwrap();
        let faithful = violate(c, &control_pieces(c).await).await;
        assert_eq!(
            faithful,
            (Vec::new(), false),
            "with AWS's rules: the second attach refused, nothing reported"
        );
        world
            .aws
            .control()
            .set_breaks(&[
                "double_attach",
                "volume_stays_on_terminated",
                "address_stays_on_terminated",
            ])
            .await
            .unwrap();
        let (found, second) = violate(c, &control_pieces(c).await).await;
        world.aws.control().set_breaks(&[]).await.unwrap();
        assert!(second, "the break let the second attach through");
        for expected in [
            "volume attached to two instances",
            "to terminated instance",
            "address associated with terminated instance",
        ] {
            assert!(
                found.iter().any(|v| v.contains(expected)),
                "the watcher reports {expected:?}: {found:?}"
            );
        }
    });
}

// --- throttling storm -----------------------------------------------------------------------

/// Each service's own throttling error (code, HTTP status), as AWS answers it.
const THROTTLING: &[(&str, &str, u16)] = &[
    ("ec2", "RequestLimitExceeded", 503),
    ("autoscaling", "Throttling", 400),
    ("iam", "Throttling", 400),
    ("sts", "Throttling", 400),
    ("lambda", "TooManyRequestsException", 429),
    ("events", "ThrottlingException", 400),
    ("logs", "ThrottlingException", 400),
];
/// Each service's own internal error.
const SERVER_ERROR: &[(&str, &str, u16)] = &[
    ("ec2", "InternalError", 500),
    ("autoscaling", "InternalFailure", 500),
    ("iam", "ServiceFailure", 500),
    ("sts", "InternalFailure", 500),
    ("lambda", "ServiceException", 500),
    ("events", "InternalException", 500),
    ("logs", "ServiceUnavailableException", 500),
];
const THROTTLED_SHARE: f64 = 0.30;
const SERVER_ERROR_SHARE: f64 = 0.05;

/// The `retrying AWS call` lines the provider logs at debug level (one per retry).
fn provider_retries(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("retrying AWS call"))
        .count()
}

/// The test's own look through the storm: tried until it gets through the injected faults.
async fn despite_faults<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..50 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("50 tries failed; last: {:#}", last.unwrap());
}

#[test]
fn throttling_storm() {
    let n = env_number("AUTOHEAL_STORM_STACKS", 10) as usize;
    let started = Instant::now();
    let world = World::start();
    let control = world.aws.control();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("terraform.log");
    let names: Vec<String> = (0..n).map(|i| format!("storm{i}")).collect();
    let tf = newest();
    let t = world.terraform(
        &tf,
        &names,
        &[
            ("TF_LOG_PROVIDER", "DEBUG".into()),
            ("TF_LOG_PATH", log.display().to_string()),
        ],
    );
    // At this clock scale the default 300 s hook would be 6 real seconds: ten heals with every
    // third call throttled on two cores could outlast it, and an ABANDON would mask what this
    // test is about. (The chaos soak keeps the default.)
    t.set_var("lifecycle_hook_timeout", "3600");
    let _guard = t.destroy_guard();
    world.block(async {
        for (service, code, status) in THROTTLING {
            control
                .add_fault(
                    &Fault::error("*", code)
                        .service(service)
                        .status(*status)
                        .message("Rate exceeded (injected)")
                        .fraction(THROTTLED_SHARE),
                )
                .await
                .unwrap();
        }
        // Tried after the throttling rule: 5% of all calls is this share of the rest.
        for (service, code, status) in SERVER_ERROR {
            control
                .add_fault(
                    &Fault::error("*", code)
                        .service(service)
                        .status(*status)
                        .message("internal error (injected)")
                        .fraction(SERVER_ERROR_SHARE / (1.0 - THROTTLED_SHARE)),
                )
                .await
                .unwrap();
        }
    });
    let mut phases = Vec::new();
    let t0 = Instant::now();
    t.apply()
        .unwrap_or_else(|e| panic!("apply under faults: {e:#}"));
    phases.push(("apply", t0.elapsed()));
    let created = stacks(&t);
    assert_eq!(created.len(), n);
    t.set_var("tags", r#"{Storm = "yes"}"#);
    t.set_var("instance_type", "t3.small");
    let t0 = Instant::now();
    t.apply()
        .unwrap_or_else(|e| panic!("update under faults: {e:#}"));
    phases.push(("update", t0.elapsed()));
    let updated = stacks(&t);
    for (name, stack) in &updated {
        assert_ne!(
            attr(stack, "instance_id"),
            attr(&created[name], "instance_id"),
            "{name}: instance_type rolls the instance"
        );
    }
    // Every stack served by its new instance, checked with the faults still on.
    world.block(async {
        for (name, stack) in &updated {
            let id = attr(stack, "instance_id");
            let group_name = format!("{name}-asg");
            let group =
                despite_faults(|| group_instances(&world.clients.autoscaling, &group_name)).await;
            assert!(
                matches!(group.as_slice(), [one] if one.id == id && one.lifecycle_state == "InService"),
                "{name}: {group:?}"
            );
        }
    });
    let t0 = Instant::now();
    t.destroy()
        .unwrap_or_else(|e| panic!("destroy under faults: {e:#}"));
    phases.push(("destroy", t0.elapsed()));
    let (rules, calls) = world.block(async {
        let rules = control.faults().await.unwrap();
        control.clear_faults().await.unwrap();
        (rules, control.calls().await.unwrap())
    });
    let leaked: Vec<String> = names.iter().flat_map(|n| world.leaked(n)).collect();

    let fired: u64 = rules.iter().map(|r| r.fired).sum();
    let faulted = |calls: &[&Call]| calls.iter().filter(|c| c.fault.is_some()).count();
    let by_provider: Vec<&Call> = calls
        .iter()
        .filter(|c| c.access_key_id.as_deref() == Some(PROVIDER_ACCESS_KEY))
        .collect();
    let by_lambda: Vec<&Call> = calls.iter().filter(|c| c.function.is_some()).collect();
    let answered_with = |codes: &[(&str, &str, u16)]| {
        calls
            .iter()
            .filter(|c| {
                c.fault.is_some() && codes.iter().any(|t| c.error_code.as_deref() == Some(t.1))
            })
            .count()
    };
    let throttled = answered_with(THROTTLING);
    let server_errors = answered_with(SERVER_ERROR);
    // The realistic local AWS refuses on its own too, as AWS does, and the provider retries
    // those as well: Lambda's CreateFunction and UpdateFunctionConfiguration answer
    // InvalidParameterValueException while the new role propagates (IAM's eventual
    // consistency); EC2's DeleteSecurityGroup answers DependencyViolation while an interface
    // of the terminated instance still uses the group (the destroy deletes the group as
    // soon as the address is released, beside the volume's final snapshot).
    let propagation: Vec<&&Call> = by_provider
        .iter()
        .filter(|c| {
            c.fault.is_none()
                && match c.error_code.as_deref() {
                    Some("InvalidParameterValueException") => {
                        ["CreateFunction", "UpdateFunctionConfiguration"]
                            .contains(&c.operation.as_str())
                    }
                    Some("DependencyViolation") => c.operation.starts_with("Delete"),
                    _ => false,
                }
        })
        .collect();
    let retries = provider_retries(&log);
    eprintln!(
        "RELIABILITY storm stacks={n} calls={} faults_injected={fired} throttled={throttled} \
         server_errors={server_errors} throttled_share={:.3} server_error_share={:.3} \
         provider_calls={} provider_faulted={} provider_refusals_retried={} \
         provider_retries_logged={retries} \
         lambda_calls={} lambda_faulted={} apply_s={:.1} update_s={:.1} destroy_s={:.1} \
         leaked={} total_s={:.1}",
        calls.len(),
        throttled as f64 / calls.len().max(1) as f64,
        server_errors as f64 / calls.len().max(1) as f64,
        by_provider.len(),
        faulted(&by_provider),
        propagation.len(),
        by_lambda.len(),
        faulted(&by_lambda),
        phases[0].1.as_secs_f64(),
        phases[1].1.as_secs_f64(),
        phases[2].1.as_secs_f64(),
        leaked.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(fired > 0, "faults were injected");
    assert!(retries > 0, "the provider logged its retries");
    // Every throttled or failed call of the provider's was retried (and logged), none given
    // up on or swallowed: the applies and the destroy succeeded on the retries.
    assert_eq!(
        retries,
        faulted(&by_provider) + propagation.len(),
        "the provider's retries vs its calls answered by a fault, by IAM propagation or by a \
         dependency still there"
    );
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

// --- concurrency ----------------------------------------------------------------------------

/// Everything of one stack a Lambda may name in a call.
#[derive(Debug, Default)]
struct Owned {
    function: String,
    group: String,
    volume: String,
    allocation: String,
    instances: BTreeSet<String>,
}

impl Owned {
    fn owns(&self, value: &str) -> bool {
        value == self.group
            || value == self.volume
            || value == self.allocation
            || self.instances.contains(value)
            || value.starts_with(&format!("{}-", self.group.trim_end_matches("-asg")))
    }
}

/// Every string inside a call's parameters.
fn param_strings(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| param_strings(x, out)),
        Json::Object(o) => o.values().for_each(|x| param_strings(x, out)),
        _ => {}
    }
}

/// Calls whose parameters name something of another stack, and mutating calls that name
/// something that is not their own stack's.
fn cross_talk(calls: &[Call], stacks: &[Owned]) -> Vec<String> {
    const MUTATING: &[&str] = &[
        "AttachVolume",
        "DetachVolume",
        "AssociateAddress",
        "DisassociateAddress",
        "CompleteLifecycleAction",
        "RecordLifecycleActionHeartbeat",
    ];
    let mut out = Vec::new();
    for call in calls {
        let Some(function) = &call.function else {
            continue;
        };
        let Some(own) = stacks.iter().find(|s| &s.function == function) else {
            out.push(format!("call {} by unknown function {function}", call.seq));
            continue;
        };
        let mut values = Vec::new();
        param_strings(&call.params, &mut values);
        for value in &values {
            if let Some(other) = stacks
                .iter()
                .find(|s| s.function != own.function && s.owns(value))
            {
                out.push(format!(
                    "{function} {} names {value} of {}",
                    call.operation, other.function
                ));
            } else if MUTATING.contains(&call.operation.as_str())
                && (value.starts_with("vol-")
                    || value.starts_with("eipalloc-")
                    || value.starts_with("i-"))
                && !own.owns(value)
            {
                out.push(format!(
                    "{function} {} names {value}, not its own",
                    call.operation
                ));
            }
        }
    }
    out
}

#[test]
fn concurrent_stacks_do_not_cross_talk() {
    let n = env_number("AUTOHEAL_CONCURRENT_STACKS", 5) as usize;
    let started = Instant::now();
    let world = World::start();
    let tf = newest();
    let names: Vec<String> = (0..n).map(|i| format!("conc{i}")).collect();
    // One Terraform working directory (and state) per stack.
    let runs: Vec<Terraform> = names
        .iter()
        .map(|name| {
            let t = world.terraform(&tf, std::slice::from_ref(name), &[]);
            // Five heals start at once on two cores: keep the hook from timing out (see the
            // storm test).
            t.set_var("lifecycle_hook_timeout", "3600");
            t
        })
        .collect();
    let _guards: Vec<_> = runs.iter().map(Terraform::destroy_guard).collect();
    let parallel = |what: &str, step: &(dyn Fn(&Terraform) -> anyhow::Result<()> + Sync)| {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .iter()
                .zip(&names)
                .map(|(t, name)| (name, s.spawn(move || step(t))))
                .collect();
            for (name, h) in handles {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{name}: {what}: {e:#}"));
            }
        });
        t0.elapsed()
    };
    let apply_time = parallel("apply", &|t| t.apply().map(|_| ()));
    let outputs: Vec<Json> = runs
        .iter()
        .zip(&names)
        .map(|(t, name)| stacks(t)[name].clone())
        .collect();
    // Kill every stack's instance at once: five heals in parallel.
    let heal_time = world.block(async {
        let c = &world.clients;
        let first: Vec<String> = outputs.iter().map(|s| attr(s, "instance_id")).collect();
        c.ec2
            .terminate_instances()
            .set_instance_ids(Some(first.clone()))
            .send()
            .await
            .unwrap();
        let t0 = Instant::now();
        for (name, old) in names.iter().zip(&first) {
            terraform_tests::local_aws::helpers::wait_for_single_instance(
                &c.autoscaling,
                &format!("{name}-asg"),
                "InService",
                Some(old),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        }
        t0.elapsed()
    });
    let destroy_time = parallel("destroy", &|t| t.destroy().map(|_| ()));
    let control = world.aws.control();
    let (calls, events, invocations) = world.block(async {
        (
            control.calls().await.unwrap(),
            control.events().await.unwrap(),
            control.invocations().await.unwrap(),
        )
    });
    let owned: Vec<Owned> = names
        .iter()
        .zip(&outputs)
        .map(|(name, out)| {
            let group = format!("{name}-asg");
            Owned {
                function: format!("{name}-attach"),
                instances: events
                    .iter()
                    .filter(|e| e.detail("AutoScalingGroupName") == Some(group.as_str()))
                    .filter_map(|e| e.detail("EC2InstanceId").map(str::to_string))
                    .collect(),
                group,
                volume: attr(out, "volume_id"),
                allocation: attr(out, "allocation_id"),
            }
        })
        .collect();
    let problems = cross_talk(&calls, &owned);
    // Each function ran only for its own group's launches.
    let mut misdelivered = Vec::new();
    for inv in &invocations {
        let own = owned.iter().find(|o| o.function == inv.function);
        let event = events
            .iter()
            .find(|e| Some(e.id.as_str()) == inv.event_id.as_deref());
        match (own, event) {
            (Some(o), Some(e)) if e.detail("AutoScalingGroupName") == Some(o.group.as_str()) => {}
            _ => misdelivered.push(format!("{} ran for event {:?}", inv.function, inv.event_id)),
        }
    }
    let mut per_function: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &calls {
        if let Some(f) = c.function.as_deref() {
            let e = per_function.entry(f).or_default();
            e.0 += 1;
            if matches!(c.operation.as_str(), "AttachVolume" | "AssociateAddress") {
                e.1 += 1;
            }
        }
    }
    let leaked: Vec<String> = names.iter().flat_map(|n| world.leaked(n)).collect();
    eprintln!(
        "RELIABILITY concurrency stacks={n} lambda_calls={} attach_and_associate_calls={} \
         invocations={} cross_talk={} misdelivered={} apply_s={:.1} heal_all_s={:.1} \
         destroy_s={:.1} leaked={} total_s={:.1}",
        per_function.values().map(|v| v.0).sum::<usize>(),
        per_function.values().map(|v| v.1).sum::<usize>(),
        invocations.len(),
        problems.len(),
        misdelivered.len(),
        apply_time.as_secs_f64(),
        heal_time.as_secs_f64(),
        destroy_time.as_secs_f64(),
        leaked.len(),
        started.elapsed().as_secs_f64(),
    );
    for o in &owned {
        let (calls, mutating) = per_function
            .get(o.function.as_str())
            .copied()
            .unwrap_or_default();
        assert!(
            mutating >= 4,
            "{}: attached and associated for the first launch and the heal ({calls} calls, \
             {mutating} AttachVolume/AssociateAddress)",
            o.function
        );
        assert!(o.instances.len() >= 2, "{o:?}");
    }
    assert!(problems.is_empty(), "cross-talk: {problems:#?}");
    assert!(misdelivered.is_empty(), "{misdelivered:#?}");
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

#[test]
fn cross_talk_is_detected() {
    let stacks = vec![
        Owned {
            function: "a-attach".into(),
            group: "a-asg".into(),
            volume: "vol-a".into(),
            allocation: "eipalloc-a".into(),
            instances: ["i-a1".to_string()].into(),
        },
        Owned {
            function: "b-attach".into(),
            group: "b-asg".into(),
            volume: "vol-b".into(),
            allocation: "eipalloc-b".into(),
            instances: ["i-b1".to_string()].into(),
        },
    ];
    let call = |function: Option<&str>, operation: &str, params: Json| Call {
        seq: 1,
        time: String::new(),
        service: "ec2".into(),
        region: None,
        operation: operation.into(),
        params,
        status: 200,
        error_code: None,
        fault: None,
        duration_ms: 0.0,
        access_key_id: None,
        function: function.map(str::to_string),
        request_id: None,
    };
    let fine = [
        call(
            Some("a-attach"),
            "AttachVolume",
            serde_json::json!({"VolumeId": "vol-a", "InstanceId": "i-a1"}),
        ),
        call(
            None,
            "AttachVolume",
            serde_json::json!({"VolumeId": "vol-b", "InstanceId": "i-a1"}),
        ),
        call(
            Some("b-attach"),
            "DescribeAutoScalingGroups",
            serde_json::json!({"AutoScalingGroupNames": ["b-asg"]}),
        ),
    ];
    assert!(cross_talk(&fine, &stacks).is_empty());
    let bad = [
        call(
            Some("a-attach"),
            "AttachVolume",
            serde_json::json!({"VolumeId": "vol-b", "InstanceId": "i-a1"}),
        ),
        call(
            Some("b-attach"),
            "DescribeInstances",
            serde_json::json!({"InstanceIds": ["i-a1"]}),
        ),
        call(
            Some("a-attach"),
            "AssociateAddress",
            serde_json::json!({"AllocationId": "eipalloc-a", "InstanceId": "i-zzz"}),
        ),
        call(Some("c-attach"), "DescribeVolumes", serde_json::json!({})),
    ];
    assert_eq!(
        cross_talk(&bad, &stacks).len(),
        4,
        "{:?}",
        cross_talk(&bad, &stacks)
    );
}

#[test]
fn percentiles_and_the_seeded_schedule() {
    let d: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
    assert_eq!(percentile(&d, 50.0), Duration::from_millis(5));
    assert_eq!(percentile(&d, 90.0), Duration::from_millis(9));
    assert_eq!(percentile(&d, 100.0), Duration::from_millis(10));
    assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    let (mut a, mut b) = (Rng(42), Rng(42));
    let xs: Vec<u64> = (0..5).map(|_| a.below(400)).collect();
    let ys: Vec<u64> = (0..5).map(|_| b.below(400)).collect();
    assert_eq!(xs, ys);
    assert!(xs.iter().all(|x| *x < 400));
    assert_ne!(Rng(1).next_u64(), Rng(2).next_u64());
}
