//! A local AWS for the tests: one `localaws` server (moto, extended) per test.
//!
//! # Design
//!
//! The autoheal pattern needs AWS behaviour that no emulator has out of the box: a launch
//! lifecycle hook that holds a new instance in `Pending:Wait`, the EventBridge event that hook
//! emits, a rule that delivers it to a Lambda function which really runs (our handler is a
//! `provided.al2023` binary), and EC2's rules for volumes and Elastic IPs. So the tests run
//! against [moto](https://github.com/getmoto/moto)'s server, **extended in its own Python
//! process** by `terraform-tests/local_aws/` (package `localaws`, another engineer's code;
//! its README and `localaws/__main__.py` say what it emulates and why). On top of moto it adds:
//!
//! * launch lifecycle hooks (`Pending:Wait`, CompleteLifecycleAction, heartbeat timeouts with
//!   the default result), and the `EC2 Instance-launch Lifecycle Action` event;
//! * EventBridge delivery with AWS's pattern semantics, to functions that run natively (the
//!   zip's `bootstrap` behind a Runtime API emulator) with Lambda's timeout, asynchronous
//!   retries, resource-policy check and CloudWatch Logs output;
//! * EC2 details: Elastic IPs disassociated on termination, AttachVolume's zone/in-use
//!   checks, detaching that takes time;
//! * a scaled clock (`--clock-scale 0.01`: a 60 s Lambda retry delay takes 0.6 s), and a
//!   control API under `/_localaws/` ([`control::Control`]): fault injection in each service's
//!   own error format, transient states, the call log, Lambda invocations, events, reset.
//!
//! Nothing in the provider or the handler knows about it: they reach it only through endpoint
//! settings, exactly as they would reach AWS. Tests point the provider's `endpoints` block (or
//! `AWS_ENDPOINT_URL`) at [`LocalAws::endpoint`]; the server injects `AWS_ENDPOINT_URL` into
//! every Lambda process it starts, as Lambda injects credentials; any credentials are
//! accepted (account `123456789012`).
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use terraform_tests::local_aws::LocalAws;
//! let aws = LocalAws::start()?; // its own process, port and AWS state
//! let clients = aws.clients().await;
//! clients.ec2.describe_instances().send().await?;
//! let calls = aws.control().calls().await?;
//! # Ok(()) }
//! ```
//!
//! Each [`LocalAws`] is its own server on its own free port, so tests run in parallel without
//! sharing state. Its stderr goes to a log file in a temp dir ([`LocalAws::log_path`]); when
//! it is dropped during a panic (a failing test) the end of that log is printed and the file
//! is kept. Dropping it
//! stops the server: SIGTERM (it then kills the Lambda processes it started), SIGKILL after
//! 2 s.
//!
//! The venv with moto comes from `tools/install-tools` (`$AUTOHEAL_TOOLS_DIR/venv`, falling
//! back to `<repo>/.tools/venv`).

pub mod clients;
pub mod control;
pub mod helpers;
pub mod zip;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub use clients::Clients;
pub use control::Control;

/// How long the server may take to print its READY line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// The region the tests use (the server's default too).
pub const DEFAULT_REGION: &str = "ap-southeast-2";
/// moto's account id.
pub const ACCOUNT_ID: &str = "123456789012";
/// What the server prints on stdout when it is ready, followed by its URL.
const READY_PREFIX: &str = "LOCALAWS_READY ";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Multiplier for every AWS delay the server emulates (heartbeat timeouts, Lambda retry
    /// delays, detach time). The tests' default is 0.01: 100 times faster than AWS. A Lambda
    /// function's own timeout stays in real seconds.
    pub clock_scale: f64,
    /// The region the server assumes for requests without a SigV4 scope, and the region of
    /// the SDK clients [`LocalAws::clients`] builds.
    pub region: String,
    /// The server's `--log-level` (debug, info, warning, error).
    pub log_level: String,
    /// How hard the server is (`--profile`, localaws/profile.py).
    pub profile: Profile,
    /// Added to the server's environment, e.g. `LOCALAWS_IAM_DECISIONS_LOG` (every IAM
    /// decision appended to that file, localaws/iam_enforce.py).
    pub env: Vec<(String, String)>,
    /// The server's `--aarch64-emulator`: the command (shell words) that runs the bootstrap of
    /// an `arm64` function on a host that is not AArch64, e.g.
    /// [`crate::aarch64::Qemu::emulator_command_line`]. `None`: not passed (the server then
    /// reads `LOCALAWS_AARCH64_EMULATOR`, if set, and otherwise fails such functions at init).
    pub aarch64_emulator: Option<String>,
}

/// The local AWS's profiles (terraform-tests/local_aws/localaws/profile.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// AWS's timings and refusals: instances pending for seconds and shutting down for tens
    /// of seconds with their volumes attached, IAM propagation windows, launch back-off. The
    /// acceptance, crash, chaos and demo runs use it.
    Realistic,
    /// Every state change instant: layer tests, which check one behaviour each, and
    /// benchmarks that compare code paths.
    Fast,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Realistic => "realistic",
            Profile::Fast => "fast",
        }
    }
}

impl Default for Options {
    /// The layer tests' server: clock scale 0.01, the `fast` profile.
    fn default() -> Self {
        Self {
            clock_scale: 0.01,
            region: DEFAULT_REGION.to_string(),
            log_level: "info".to_string(),
            profile: Profile::Fast,
            env: Vec::new(),
            aarch64_emulator: None,
        }
    }
}

/// A running local AWS server. Stopped on drop.
pub struct LocalAws {
    child: Option<Child>,
    endpoint: String,
    region: String,
    clock_scale: f64,
    control: Control,
    log_path: PathBuf,
    /// Holds the log file; removed after the server has stopped, kept if a test failed.
    dir: Option<tempfile::TempDir>,
}

impl LocalAws {
    /// Starts a server with the tests' defaults ([`Options::default`]: clock scale 0.01,
    /// region ap-southeast-2).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default())
    }

    /// Starts a server and waits (up to [`READY_TIMEOUT`]) for its READY line.
    pub fn start_with(options: Options) -> anyhow::Result<Self> {
        anyhow::ensure!(
            options.clock_scale > 0.0 && options.clock_scale.is_finite(),
            "clock scale must be > 0, not {}",
            options.clock_scale
        );
        let python = venv_python()?;
        let package_root = package_root();
        anyhow::ensure!(
            package_root.join("localaws").join("__main__.py").is_file(),
            "{} has no localaws package",
            package_root.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("localaws-")
            .tempdir()
            .context("creating a temp dir for the local AWS log")?;
        let log_path = dir.path().join("localaws.stderr.log");
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

        let mut cmd = Command::new(&python);
        cmd.args(["-m", "localaws", "--host", "127.0.0.1", "--port", "0"])
            .arg("--clock-scale")
            .arg(options.clock_scale.to_string())
            .arg("--region")
            .arg(&options.region)
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("--profile")
            .arg(options.profile.as_str())
            .args(
                options
                    .aarch64_emulator
                    .iter()
                    .flat_map(|e| ["--aarch64-emulator", e.as_str()]),
            )
            .current_dir(&package_root)
            .env("PYTHONPATH", &package_root)
            .env("PYTHONUNBUFFERED", "1")
            // The server must not call itself (or real AWS) through anything of ours.
            .env_remove("AWS_ENDPOINT_URL")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // Not a process group of its own: a Ctrl-C in the terminal reaches it along with the
        // test process, and it stops cleanly (killing its Lambda processes, which have their
        // own sessions) even when the test process dies without dropping it.
        let started = Instant::now();
        let mut child =
            crate::process::spawn(&mut cmd).with_context(|| format!("could not start {cmd:?}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("localaws-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = tx.send(first);
                // Keep draining: the server never writes more, but a full pipe must not block it.
                for _ in lines {}
            })
            .context("spawning the stdout reader")?;

        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            outcome => {
                let why = match outcome {
                    Err(_) => format!("no READY line within {READY_TIMEOUT:?}"),
                    Ok(None) => "it closed stdout without a READY line".to_string(),
                    Ok(Some(Err(e))) => format!("reading its stdout failed: {e}"),
                    Ok(Some(Ok(_))) => unreachable!(),
                };
                let status = stop_child(&mut child, STOP_GRACE);
                bail!(
                    "the local AWS server ({cmd:?}) did not start: {why}; it ended with \
                     {status}\n--- its log ({}) ---\n{}",
                    log_path.display(),
                    read_tail(&log_path, 200)
                );
            }
        };
        let Some(endpoint) = line.strip_prefix(READY_PREFIX).map(str::trim) else {
            stop_child(&mut child, STOP_GRACE);
            bail!(
                "the local AWS server printed {line:?} instead of its READY line\n--- its log ---\n{}",
                read_tail(&log_path, 200)
            );
        };
        let endpoint = endpoint.to_string();
        eprintln!(
            "local AWS: {endpoint} (pid {}, clock scale {}, region {}), ready in {:?}; log {}",
            child.id(),
            options.clock_scale,
            options.region,
            started.elapsed(),
            log_path.display()
        );
        Ok(Self {
            control: Control::new(&endpoint),
            child: Some(child),
            endpoint,
            region: options.region,
            clock_scale: options.clock_scale,
            log_path,
            dir: Some(dir),
        })
    }

    /// `http://127.0.0.1:PORT`: what the SDKs take as their endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The clock scale it was started with (see [`Options::clock_scale`]; the control API can
    /// change it later).
    pub fn clock_scale(&self) -> f64 {
        self.clock_scale
    }

    /// The process id of the server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The control API client.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// AWS SDK clients pointed at this server.
    pub async fn clients(&self) -> Clients {
        Clients::new(&self.endpoint, &self.region).await
    }

    /// The server's stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines)
    }

    /// `Some(status)` if the server has exited on its own.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the server now (SIGTERM, SIGKILL after [`STOP_GRACE`]) and returns how it ended.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .expect("the server runs until stop or drop");
        Ok(stop_child(&mut child, STOP_GRACE))
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, STOP_GRACE);
        }
        if thread::panicking() {
            // A failing test: show the end of the log, and keep the whole file.
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
            eprintln!(
                "--- local AWS log ({}, kept), last 300 lines ---\n{}\n--- end of local AWS log ---",
                self.log_path.display(),
                read_tail(&self.log_path, 300)
            );
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`. Returns the exit status.
fn stop_child(child: &mut Child, grace: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which is not reaped yet, so not reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => break,
        }
    }
    eprintln!("local AWS (pid {pid}) did not stop within {grace:?} of SIGTERM: SIGKILL");
    let _ = child.kill();
    child
        .wait()
        .expect("waiting for the killed local AWS server")
}

/// The last `lines` lines of a file (at most its last 256 KiB).
fn read_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot read {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    let _ = file.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `terraform-tests/local_aws`: the folder that holds the `localaws` package.
pub fn package_root() -> PathBuf {
    crate::workspace_root()
        .join("terraform-tests")
        .join("local_aws")
}

/// `$AUTOHEAL_TOOLS_DIR` (from `.tools/env.sh`), or `<repo>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("AUTOHEAL_TOOLS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".tools"))
}

/// The venv's python (under [`tools_dir`]), checked to have moto installed.
pub fn venv_python() -> anyhow::Result<PathBuf> {
    venv_python_in(&tools_dir())
}

/// The python of `<tools_dir>/venv`, checked to have moto installed.
pub fn venv_python_in(tools_dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = tools_dir.join("venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        bail!(
            "no Python venv at {}: run tools/install-tools (it installs moto and the local AWS's \
             other packages there)",
            venv.display()
        );
    }
    let has_moto = std::fs::read_dir(venv.join("lib"))
        .map(|entries| {
            entries.flatten().any(|e| {
                let site = e.path().join("site-packages");
                site.join("moto").join("__init__.py").is_file()
            })
        })
        .unwrap_or(false);
    if !has_moto {
        bail!(
            "moto is not installed in the venv {}: run tools/install-tools",
            venv.display()
        );
    }
    Ok(python)
}
