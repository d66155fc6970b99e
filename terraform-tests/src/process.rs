//! Running a command to completion with a deadline, capturing stdout and stderr.
//!
//! A Terraform run (or a provider) that hangs must fail its test, not hang the whole suite, so
//! every command gets a timeout after which it is killed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

/// ETXTBSY: exec of a file that some process still has open for writing. Tests that write a
/// script and run it at once hit it when another test thread forks while the script's file
/// descriptor is still open; the window is short, so retrying is the fix.
const ETXTBSY: i32 = 26;

/// Spawns `cmd`, retrying briefly on ETXTBSY (see above).
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempts < 100 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Runs `cmd` with stdin closed, capturing both output streams. Kills it and fails when it has
/// not exited within `timeout`; the error then carries what it printed so far.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout also kills what it started (Terraform's
        // provider processes), and nothing keeps our pipes open afterwards.
        .process_group(0);
    let started = Instant::now();
    let mut child = spawn(cmd).with_context(|| format!("could not start {cmd:?}"))?;
    let stdout = reader(child.stdout.take().expect("stdout is piped"));
    let stderr = reader(child.stderr.take().expect("stderr is piped"));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            // Best effort: it may have exited in between.
            kill_process_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let duration = started.elapsed();
    // The pipes close when the process (and any child that inherited them) is gone.
    let stdout = stdout.join().expect("stdout reader panicked");
    let stderr = stderr.join().expect("stderr reader panicked");
    match status {
        Some(status) => Ok(Captured {
            status,
            stdout,
            stderr,
            duration,
        }),
        None => anyhow::bail!(
            "{cmd:?} did not finish within {timeout:?} and was killed\n\
             --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

/// SIGKILL to every process in the group led by `pid` (see `process_group(0)` above).
fn kill_process_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just ends the capture; what was read so far is still useful.
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_both_streams_and_the_exit_code() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn kills_a_command_that_runs_too_long() {
        let started = Instant::now();
        let err = run_with_timeout(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let msg = format!("{err:#}");
        assert!(msg.contains("did not finish"), "{msg}");
        assert!(msg.contains("started"), "output so far is kept: {msg}");
    }
}
