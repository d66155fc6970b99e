//! The boot script (`provider/src/autoheal_instance/mount_script.sh`), exactly as
//! `user_data.rs` renders it into the launch template, run for real.
//!
//! Each run is a fake first boot: a private mount namespace (`unshare --mount`) with its own
//! `/dev` (a tmpfs with the few device nodes the tools need and an empty `/dev/disk/by-id`)
//! and an `/etc` overlay (so the script's fstab edits stay in the test's directory). The
//! mount point's parent is a small ext4 "root disk" image mounted in the namespace, so the
//! script's `chattr +i` on the mount point works whatever file system the temp directory is
//! on, and the immutable directory never lands in the temp directory itself (whose cleanup
//! could not remove it). The script sits in a fake cloud-init scripts directory
//! (`cloud/scripts/`), as `/var/lib/cloud/instance/scripts/` holds it on an instance, next
//! to a fake user part and a fake `runcmd`; the harness runs that directory the way
//! cloud-init's `runparts()` does (listed once, sorted, each file run only if executable
//! when its turn comes). The "EBS volume" is a sparse regular file that a symlink at the
//! volume's NVMe by-id name (or at a Xen device name) points to, created before the run,
//! after a delay by a background process, or never. The real `blkid`,
//! `mkfs.ext4`/`mkfs.xfs`, `mount` (which puts a loop device under a regular file by
//! itself), `resize2fs`/`xfs_growfs`, `findmnt` and `chattr` run on it. Nothing in the
//! script knows it is tested: the only test-specific input is the wait bound, which
//! user_data.rs renders like any other parameter.
//!
//! Needs root (mounting ext4 or xfs from a loop device needs CAP_SYS_ADMIN in the initial
//! user namespace: `unshare --map-root-user` is not enough), `unshare`, e2fsprogs and
//! xfsprogs, shellcheck and python3; a missing one fails the test with what to install.
//! The namespaces end with each run, which unmounts everything and frees the loop devices.

// Mount namespaces, loop devices and file modes: Linux only (on another host this file is empty).
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use autoheal_provider::autoheal_instance::user_data::{
    self, MountParams, MOUNT_PART_FILENAME, USER_PART_FILENAME,
};

const VOLUME_ID: &str = "vol-0123456789abcdef0";
const BY_ID_LINK: &str = "disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
const SEED_FSTAB: &str = "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n";
/// The fake cloud-init scripts directory, relative to the machine's directory.
const SCRIPTS_DIR: &str = "cloud/scripts";
/// The name cloud-init gives `runcmd`'s commands in the scripts directory (cc_runcmd.py).
const RUNCMD: &str = "runcmd";
const MIB: u64 = 1024 * 1024;

/// Runs in the new mount namespace; the test passes everything through AH_* variables.
const HARNESS: &str = r#"
set -euo pipefail
export LC_ALL=C
T=$AH_DIR
# A private /dev: device nodes for what the tools open, loop devices for mount's auto-loop.
mkdir -p "$T/dev" "$T/layers"
mount -t tmpfs -o mode=755 autoheal-test-dev "$T/dev"
mknod -m 666 "$T/dev/null" c 1 3
mknod -m 666 "$T/dev/zero" c 1 5
mknod -m 666 "$T/dev/random" c 1 8
mknod -m 666 "$T/dev/urandom" c 1 9
mknod -m 660 "$T/dev/loop-control" c 10 237
for i in $(seq 0 255); do mknod -m 660 "$T/dev/loop$i" b 7 "$i"; done
ln -s /proc/self/fd "$T/dev/fd"
ln -s /proc/self/fd/0 "$T/dev/stdin"
ln -s /proc/self/fd/1 "$T/dev/stdout"
ln -s /proc/self/fd/2 "$T/dev/stderr"
mkdir -p "$T/dev/disk/by-id"
mount --move "$T/dev" /dev
# /etc as an overlay whose upper layer starts with the machine's fstab.
mount -t tmpfs autoheal-test-etc "$T/layers"
mkdir "$T/layers/upper" "$T/layers/work"
cp "$T/fstab" "$T/layers/upper/fstab"
mount -t overlay autoheal-test-etc \
  -o "lowerdir=/etc,upperdir=$T/layers/upper,workdir=$T/layers/work" /etc
# The root disk under the mount point: an ext4 image that persists across boots.
mkdir -p "$T/mnt"
mount "$T/root.img" "$T/mnt"
eval "$AH_BEFORE"
# The volume shows up now, later, or never.
case $AH_DELAY in
  never) ;;
  0) ln -s "$T/volume.img" "/dev/$AH_LINK" ;;
  *) (sleep "$AH_DELAY" && ln -s "$T/volume.img" "/dev/$AH_LINK") & ;;
esac
# cloud-init's scripts_user: runparts() lists the directory once, sorted, and runs each file
# that is executable when its turn comes (the boot script, AH_RUNS times).
rc=0
parts=("$T/$AH_SCRIPTS"/*)
for f in "${parts[@]}"; do
  if [[ ! -x $f ]]; then
    echo "skipping ${f##*/}" >>"$T/runparts"
  elif [[ ${f##*/} == "$AH_PART" ]]; then
    for _ in $(seq "$AH_RUNS"); do
      rc=0
      "$f" 2>>"$T/log" || rc=$?
    done
  else
    "$f" >>"$T/runparts" 2>&1 || echo "${f##*/} failed" >>"$T/runparts"
  fi
done
wait
findmnt -rn -o FSTYPE,SOURCE --mountpoint "$AH_MOUNT_POINT" >"$T/mounted" || true
eval "$AH_AFTER" >"$T/after"
cp /etc/fstab "$T/fstab"
exit "$rc"
"#;

/// Fails the test, with what to do, when this machine cannot run it.
fn require_tools() {
    let needed = [
        ("unshare", "util-linux"),
        ("mount", "util-linux"),
        ("findmnt", "util-linux"),
        ("blkid", "util-linux"),
        ("mkfs.ext4", "e2fsprogs"),
        ("resize2fs", "e2fsprogs"),
        ("dumpe2fs", "e2fsprogs"),
        ("chattr", "e2fsprogs"),
        ("mkfs.xfs", "xfsprogs (tools/install-tools installs it)"),
        ("xfs_growfs", "xfsprogs (tools/install-tools installs it)"),
        ("xfs_db", "xfsprogs (tools/install-tools installs it)"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(cmd, pkg)| format!("{cmd} (from {pkg})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the mount script tests need: {}",
        missing.join(", ")
    );
    let uid = Command::new("id").arg("-u").output().expect("id runs");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the mount script tests must run as root: they mount ext4 and xfs file systems from \
         loop devices inside a private mount namespace, which an unprivileged user (even \
         with `unshare --map-root-user`) cannot do"
    );
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()))
        .unwrap_or(false)
        || ["/sbin", "/usr/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(cmd).is_file())
}

/// Where the volume shows up.
#[derive(Clone, Copy)]
enum Appears {
    /// At its NVMe by-id name, before the script starts.
    Now,
    /// At its NVMe by-id name, this many seconds after the script starts.
    After(u32),
    /// Never.
    Never,
    /// At a Xen device name (relative to /dev), before the script starts.
    AtXenName(&'static str),
}

/// One fake machine whose data volume and fstab persist across boots.
struct Machine {
    dir: tempfile::TempDir,
}

/// What one boot did.
struct Boot {
    status: Option<i32>,
    log: String,
    /// `FSTYPE SOURCE` of what is mounted at the mount point at the end, if anything.
    mounted: String,
    /// The output of the `after` snippet, run at the end of the boot whatever the script's
    /// exit status.
    after: String,
    /// What the other parts of the scripts directory did: one line per part that ran (its
    /// own output) and `skipping <name>` per part that was not executable.
    runparts: String,
    elapsed: Duration,
}

impl Machine {
    fn new(volume_bytes: u64) -> Machine {
        require_tools();
        let dir = tempfile::tempdir().expect("temp dir");
        let m = Machine { dir };
        m.resize_volume(volume_bytes);
        fs::write(m.path("fstab"), SEED_FSTAB).expect("seed fstab");
        let root = fs::File::create(m.path("root.img")).expect("root disk image");
        root.set_len(16 * MIB).expect("size the root disk image");
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(m.path("root.img")),
        );
        fs::create_dir_all(m.path(SCRIPTS_DIR)).expect("scripts directory");
        m
    }

    /// Whether a file of the scripts directory has an executable bit.
    fn executable(&self, name: &str) -> bool {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path(SCRIPTS_DIR).join(name);
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        meta.permissions().mode() & 0o111 != 0
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn image(&self) -> PathBuf {
        self.path("volume.img")
    }

    fn mount_point(&self) -> String {
        self.path("mnt/data").to_string_lossy().into_owned()
    }

    fn params(&self, filesystem: &str) -> MountParams {
        MountParams::new(VOLUME_ID, "/dev/xvdb", self.mount_point(), filesystem)
    }

    /// The volume grows (or is created) like an EBS volume: its new blocks read as zeros.
    fn resize_volume(&self, bytes: u64) {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.image())
            .expect("volume image");
        f.set_len(bytes).expect("resize the volume image");
    }

    fn fstab(&self) -> String {
        fs::read_to_string(self.path("fstab")).expect("fstab")
    }

    fn boot(&self, params: &MountParams, wait_seconds: u32, appears: Appears) -> Boot {
        self.boot_with(params, wait_seconds, appears, "", "", 1)
    }

    /// One boot: `before` runs in the namespace before the scripts directory, `after` at the
    /// end whatever happened, and the script runs `runs` times (a re-run within the same
    /// boot).
    fn boot_with(
        &self,
        params: &MountParams,
        wait_seconds: u32,
        appears: Appears,
        before: &str,
        after: &str,
        runs: u32,
    ) -> Boot {
        use std::os::unix::fs::PermissionsExt as _;
        let script =
            user_data::mount_script_waiting(params, wait_seconds).expect("renders the script");
        // The parts as cloud-init writes them on first boot: mode 0700 (shell_script.py,
        // cc_runcmd.py). The fake user part and runcmd say that they ran and try to write to
        // the mount point.
        let scripts = self.path(SCRIPTS_DIR);
        let fake = |name: &str| {
            format!(
                "#!/bin/sh\necho \"{name} ran\"\n\
                 echo {name} >\"$MP/{name}.out\" 2>/dev/null || echo \"{name} cannot write\"\n"
            )
        };
        for (name, body) in [
            (MOUNT_PART_FILENAME, script),
            (USER_PART_FILENAME, fake(USER_PART_FILENAME)),
            (RUNCMD, fake(RUNCMD)),
        ] {
            let path = scripts.join(name);
            fs::write(&path, body).expect("write a part");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod a part");
        }
        for name in ["log", "mounted", "after", "runparts"] {
            let _ = fs::remove_file(self.path(name));
        }
        let (link, delay) = match appears {
            Appears::Now => (BY_ID_LINK, "0".to_string()),
            Appears::After(s) => (BY_ID_LINK, s.to_string()),
            Appears::Never => (BY_ID_LINK, "never".to_string()),
            Appears::AtXenName(name) => (name, "0".to_string()),
        };
        let started = Instant::now();
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c", HARNESS])
            .env("AH_DIR", self.dir.path())
            .env("AH_LINK", link)
            .env("AH_DELAY", delay)
            .env("AH_MOUNT_POINT", &params.mount_point)
            .env("AH_BEFORE", before)
            .env("AH_AFTER", after)
            .env("AH_RUNS", runs.to_string())
            .env("AH_SCRIPTS", SCRIPTS_DIR)
            .env("AH_PART", MOUNT_PART_FILENAME)
            .env("MP", &params.mount_point)
            .stdin(Stdio::null())
            .output()
            .expect("unshare runs");
        let elapsed = started.elapsed();
        let read = |name: &str| fs::read_to_string(self.path(name)).unwrap_or_default();
        let boot = Boot {
            status: out.status.code(),
            log: read("log"),
            mounted: read("mounted").trim().to_string(),
            after: read("after"),
            runparts: read("runparts"),
            elapsed,
        };
        assert!(
            boot.log.contains("autoheal-mount:") || boot.status == Some(0),
            "the harness failed before the script ran: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            boot.log
        );
        boot
    }

    /// `blkid -p` of the volume: its TYPE, UUID, PTTYPE, ...; empty when blank.
    fn probe(&self) -> HashMap<String, String> {
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(self.image())
            .output()
            .expect("blkid runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The size the file system on the volume says it has, in bytes.
    fn filesystem_bytes(&self) -> u64 {
        let image = self.image();
        match self.probe().get("TYPE").map(String::as_str) {
            Some("ext4") => {
                let out = run_ok(Command::new("dumpe2fs").arg("-h").arg(&image));
                let field = |name: &str| -> u64 {
                    out.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or_else(|| panic!("{name} in dumpe2fs output:\n{out}"))
                };
                field("Block count:") * field("Block size:")
            }
            Some("xfs") => {
                let out = run_ok(
                    Command::new("xfs_db")
                        .args(["-r", "-c", "sb 0", "-c", "p dblocks", "-c", "p blocksize"])
                        .arg(&image),
                );
                let field = |name: &str| -> u64 {
                    out.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or_else(|| panic!("{name} in xfs_db output:\n{out}"))
                };
                field("dblocks =") * field("blocksize =")
            }
            other => panic!("no file system to measure: {other:?}"),
        }
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fstab entry the script is expected to write.
fn entry(uuid: &str, mount_point: &str, fstype: &str) -> String {
    let pass = if fstype == "xfs" { 0 } else { 2 };
    format!("UUID={uuid} {mount_point} {fstype} defaults,nofail 0 {pass}\n")
}

#[test]
fn formats_a_blank_volume_mounts_it_and_writes_one_fstab_entry() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "",
        "findmnt -n -o OPTIONS --mountpoint \"$MP\"",
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    let probe = m.probe();
    assert_eq!(
        probe.get("TYPE").map(String::as_str),
        Some("ext4"),
        "{probe:?}"
    );
    let uuid = probe.get("UUID").expect("a UUID").clone();
    assert!(
        boot.mounted.starts_with("ext4 /dev/loop"),
        "{}",
        boot.mounted
    );
    assert!(boot.after.starts_with("rw"), "{}", boot.after);
    assert!(boot.log.contains("is blank: mkfs.ext4"), "{}", boot.log);
    assert_eq!(
        m.fstab(),
        format!("{SEED_FSTAB}{}", entry(&uuid, &p.mount_point, "ext4"))
    );

    // A re-run in the same boot finds it mounted; another boot finds the entry: the fstab
    // keeps exactly one entry, and the volume keeps its file system.
    let boot = m.boot_with(&p, 10, Appears::Now, "", "", 2);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(boot.log.contains("is already mounted at"), "{}", boot.log);
    let boot = m.boot(&p, 10, Appears::Now);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(!boot.log.contains("making"), "{}", boot.log);
    assert_eq!(
        m.fstab(),
        format!("{SEED_FSTAB}{}", entry(&uuid, &p.mount_point, "ext4"))
    );
    assert_eq!(m.probe().get("UUID"), Some(&uuid));
}

#[test]
fn never_reformats_a_volume_that_has_a_file_system() {
    let m = Machine::new(64 * MIB);
    let boot = m.boot_with(
        &m.params("ext4"),
        10,
        Appears::Now,
        "",
        "echo precious >\"$MP/marker\"",
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    let uuid = m.probe()["UUID"].clone();

    // Configured for xfs now: the ext4 file system and its data stay.
    let p = m.params("xfs");
    let boot = m.boot_with(&p, 10, Appears::Now, "", "cat \"$MP/marker\"", 1);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(boot.log.contains("has ext4: keeping it"), "{}", boot.log);
    assert!(!boot.log.contains("making"), "{}", boot.log);
    assert_eq!(boot.after, "precious\n");
    assert_eq!(m.probe()["UUID"], uuid);
    assert_eq!(m.probe()["TYPE"], "ext4");
    assert!(boot.mounted.starts_with("ext4 "), "{}", boot.mounted);
    assert_eq!(
        m.fstab(),
        format!("{SEED_FSTAB}{}", entry(&uuid, &p.mount_point, "ext4"))
    );
}

/// Says that a test checked less than its name says: on stderr, and as a line of the
/// tools/test summary (through `$AUTOHEAL_SKIP_FILE`), so it never passes as a full check.
fn report_skip(what: &str) {
    use std::io::Write;
    eprintln!("NOT VERIFIED HERE: {what}");
    if let Some(file) = std::env::var_os("AUTOHEAL_SKIP_FILE") {
        if let Ok(mut f) = fs::OpenOptions::new().append(true).open(file) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// Whether this process may use CAP_SYS_RESOURCE, which ext4's online resize ioctl needs.
/// Some sandboxes (this project's development machines among them) drop it from root's
/// bounding set; an EC2 instance's boot scripts always have it.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

#[test]
fn grows_ext4_when_the_volume_grew() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    let boot = m.boot_with(&p, 10, Appears::Now, "", "echo kept >\"$MP/marker\"", 1);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(m.filesystem_bytes(), 64 * MIB);
    m.resize_volume(128 * MIB);
    let boot = m.boot_with(&p, 10, Appears::Now, "", "cat \"$MP/marker\"", 1);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(boot.after, "kept\n");
    if has_cap_sys_resource() {
        assert_eq!(m.filesystem_bytes(), 128 * MIB, "{}", boot.log);
        assert!(!boot.log.contains("WARNING"), "{}", boot.log);
    } else {
        // Without the capability the kernel refuses the resize; the script must then go on
        // with the volume mounted at its old size, saying so.
        report_skip(
            "ext4 online growth: this process lacks CAP_SYS_RESOURCE, which ext4's online \
             resize needs; only the fallback (mounted at the old size, with a warning) was \
             checked",
        );
        assert!(
            boot.log.contains("Permission denied to resize filesystem"),
            "{}",
            boot.log
        );
        assert!(
            boot.log.contains("WARNING: resize2fs failed"),
            "{}",
            boot.log
        );
        assert_eq!(m.filesystem_bytes(), 64 * MIB);
        assert!(boot.mounted.starts_with("ext4 "), "{}", boot.mounted);
    }
}

#[test]
fn formats_and_grows_xfs() {
    // mkfs.xfs refuses file systems under 300 MB.
    let m = Machine::new(512 * MIB);
    let p = m.params("xfs");
    let boot = m.boot(&p, 10, Appears::Now);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(m.probe()["TYPE"], "xfs");
    assert!(
        boot.mounted.starts_with("xfs /dev/loop"),
        "{}",
        boot.mounted
    );
    let uuid = m.probe()["UUID"].clone();
    assert_eq!(
        m.fstab(),
        format!("{SEED_FSTAB}{}", entry(&uuid, &p.mount_point, "xfs"))
    );
    assert_eq!(m.filesystem_bytes(), 512 * MIB);

    m.resize_volume(1024 * MIB);
    let boot = m.boot(&p, 10, Appears::Now);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(m.filesystem_bytes(), 1024 * MIB, "{}", boot.log);
    assert_eq!(m.probe()["UUID"], uuid);
    assert_eq!(
        m.fstab(),
        format!("{SEED_FSTAB}{}", entry(&uuid, &p.mount_point, "xfs"))
    );
}

#[test]
fn waits_for_a_volume_that_appears_later() {
    let m = Machine::new(64 * MIB);
    let boot = m.boot(&m.params("ext4"), 60, Appears::After(3));
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(boot.elapsed >= Duration::from_secs(3), "{:?}", boot.elapsed);
    assert!(
        boot.log.contains(&format!("waiting 60s for {VOLUME_ID}")),
        "{}",
        boot.log
    );
    let after = boot
        .log
        .lines()
        .find_map(|l| {
            l.split_once(" after ")
                .filter(|_| l.contains("found "))
                .map(|(_, s)| s)
        })
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a 'found ... after Ns' line in:\n{}", boot.log));
    assert!(
        (2..=10).contains(&after),
        "found after {after}s:\n{}",
        boot.log
    );
    assert!(boot.mounted.starts_with("ext4 "), "{}", boot.mounted);
}

#[test]
fn times_out_cleanly_when_the_volume_never_appears() {
    let m = Machine::new(64 * MIB);
    let boot = m.boot(&m.params("ext4"), 3, Appears::Never);
    assert_eq!(boot.status, Some(1), "{}", boot.log);
    assert!(
        boot.elapsed >= Duration::from_secs(3) && boot.elapsed < Duration::from_secs(20),
        "{:?}",
        boot.elapsed
    );
    assert!(
        boot.log
            .contains(&format!("ERROR: {VOLUME_ID} did not appear within 3s")),
        "{}",
        boot.log
    );
    // Only the read-only placeholder: see the test below.
    assert_eq!(boot.mounted, PLACEHOLDER_MOUNTED);
    assert_eq!(m.fstab(), SEED_FSTAB);
    assert!(
        m.probe().is_empty(),
        "the volume was touched: {:?}",
        m.probe()
    );
}

/// What the harness sees mounted at the mount point after a failed boot: the script's empty
/// read-only tmpfs.
const PLACEHOLDER_MOUNTED: &str = "tmpfs autoheal-no-volume";

/// Tries to create a file in the mount point, printing `created` or the error.
const TRY_TO_WRITE: &str = "touch \"$MP/on-the-root-disk\" 2>&1 && echo created || true";

#[test]
fn without_the_volume_nothing_lands_on_the_root_disk_and_no_user_script_runs() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    // A part that sorts before the boot script has run already when it fails: it is left as
    // it is.
    let early = "00-aaa-early";
    let boot = m.boot_with(
        &p,
        2,
        Appears::Never,
        &format!(
            "printf '#!/bin/sh\\necho {early} ran\\n' >\"$AH_DIR/{SCRIPTS_DIR}/{early}\" && \
             chmod 700 \"$AH_DIR/{SCRIPTS_DIR}/{early}\""
        ),
        TRY_TO_WRITE,
        1,
    );
    assert_eq!(boot.status, Some(1), "{}", boot.log);
    // Writes to the mount point fail, even root's: an empty read-only file system is there.
    assert_eq!(boot.mounted, PLACEHOLDER_MOUNTED, "{}", boot.log);
    assert!(
        boot.after.contains("Read-only file system") && !boot.after.contains("created"),
        "{}",
        boot.after
    );
    // The user's parts after the boot script lost their executable bits, so cloud-init's
    // runparts skipped them, and the log says why.
    for part in [USER_PART_FILENAME, RUNCMD] {
        assert!(!m.executable(part), "{part} is still executable");
        assert!(
            boot.runparts.contains(&format!("skipping {part}\n")),
            "{part}: {}",
            boot.runparts
        );
        assert!(
            !boot.runparts.contains(&format!("{part} ran")),
            "{}",
            boot.runparts
        );
        assert!(
            boot.log.contains(&format!(
                "not running {part}: no data volume at {}",
                p.mount_point
            )),
            "{}",
            boot.log
        );
    }
    assert!(m.executable(early));
    assert!(
        boot.runparts.contains(&format!("{early} ran")),
        "{}",
        boot.runparts
    );
    assert!(
        !boot.log.contains(&format!("not running {early}")),
        "{}",
        boot.log
    );
    assert!(
        m.executable(MOUNT_PART_FILENAME),
        "the boot script keeps its own mode"
    );

    // Run again once the volume is there (by hand, in the same boot: the placeholder is still
    // mounted), the script swaps the placeholder for the volume; the user's parts, made
    // executable again, then run with their data.
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "mkdir -p \"$MP\" && mount -t tmpfs -o ro autoheal-no-volume \"$MP\"",
        "",
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(
        boot.mounted.starts_with("ext4 /dev/loop"),
        "{}",
        boot.mounted
    );
    assert!(
        boot.runparts
            .contains(&format!("{USER_PART_FILENAME} ran\n")),
        "{}",
        boot.runparts
    );
}

#[test]
fn the_bare_mount_point_takes_no_writes_once_the_volume_is_unmounted() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    // The user's part writes to the volume; then the volume goes away, as on a reboot that
    // finds no volume (fstab's nofail), and nothing can be written under the bare directory.
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "",
        &format!(
            "cat \"$MP/{USER_PART_FILENAME}.out\" && umount \"$MP\" && ls -A \"$MP\" && \
             {TRY_TO_WRITE} && mkdir \"$MP/dir\" 2>&1 || true"
        ),
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(
        boot.mounted.starts_with("ext4 /dev/loop"),
        "{}",
        boot.mounted
    );
    assert!(!boot.log.contains("WARNING"), "{}", boot.log);
    // The user's parts ran, with the volume mounted, and wrote to it.
    assert!(m.executable(USER_PART_FILENAME));
    assert!(
        boot.runparts
            .contains(&format!("{USER_PART_FILENAME} ran\n"))
            && !boot.runparts.contains("cannot write"),
        "{}",
        boot.runparts
    );
    let mut lines = boot.after.lines();
    assert_eq!(lines.next(), Some(USER_PART_FILENAME), "{}", boot.after);
    // Unmounted: the directory on the root disk is empty and stays so, even for root.
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 2, "{}", boot.after);
    assert!(
        rest.iter().all(|l| l.ends_with("Operation not permitted")),
        "{}",
        boot.after
    );

    // The next boot finds the data on the volume, mounted over the same directory.
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "",
        &format!("cat \"$MP/{USER_PART_FILENAME}.out\""),
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(boot.after, format!("{USER_PART_FILENAME}\n"));
}

/// A mount point that already holds files on the root disk (the AMI's, say) is not made
/// immutable, with a warning; the volume is mounted over it as before.
#[test]
fn a_mount_point_that_is_not_empty_is_left_mutable() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "mkdir -p \"$MP\" && echo ami >\"$MP/from-the-ami\"",
        "umount \"$MP\" && cat \"$MP/from-the-ami\" && touch \"$MP/more\" && echo created",
        1,
    );
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(
        boot.log.contains(&format!(
            "WARNING: {} not empty: not immutable",
            p.mount_point
        )),
        "{}",
        boot.log
    );
    assert_eq!(boot.after, "ami\ncreated\n");
}

#[test]
fn finds_the_volume_by_its_device_name_on_xen() {
    let m = Machine::new(64 * MIB);
    // Attached as /dev/sdf, a Xen kernel names it /dev/xvdf.
    let p = MountParams::new(VOLUME_ID, "/dev/sdf", m.mount_point(), "ext4");
    let boot = m.boot(&p, 10, Appears::AtXenName("xvdf"));
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert!(
        boot.log
            .contains(&format!("found {VOLUME_ID} at /dev/xvdf")),
        "{}",
        boot.log
    );
    assert!(boot.mounted.starts_with("ext4 "), "{}", boot.mounted);
}

#[test]
fn refuses_a_volume_with_a_partition_table() {
    let m = Machine::new(64 * MIB);
    // A DOS partition table with one Linux partition from sector 2048 to the end, as
    // `fdisk` would write it.
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(((64 * MIB) / 512 - 2048) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    {
        use std::io::Write as _;
        let mut f = fs::OpenOptions::new().write(true).open(m.image()).unwrap();
        f.write_all(&mbr).unwrap();
    }
    assert_eq!(m.probe().get("PTTYPE").map(String::as_str), Some("dos"));
    let boot = m.boot(&m.params("ext4"), 10, Appears::Now);
    assert_eq!(boot.status, Some(1), "{}", boot.log);
    assert!(
        boot.log.contains("but no file system: not formatting"),
        "{}",
        boot.log
    );
    assert!(boot.log.contains("PTTYPE=dos"), "{}", boot.log);
    assert_eq!(boot.mounted, PLACEHOLDER_MOUNTED);
    assert!(!m.executable(USER_PART_FILENAME));
    assert_eq!(m.fstab(), SEED_FSTAB);
    let image = fs::read(m.image()).unwrap();
    assert_eq!(image[..512], mbr[..]);
    assert!(
        image[512..].iter().all(|&b| b == 0),
        "the volume was written to"
    );
}

#[test]
fn replaces_an_older_fstab_entry_for_the_mount_point() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    let old = format!(
        "UUID=0b7e0000-0000-4000-8000-000000000000 {} ext4 defaults 0 2",
        p.mount_point
    );
    fs::write(m.path("fstab"), format!("{SEED_FSTAB}{old}\n")).unwrap();
    let boot = m.boot(&p, 10, Appears::Now);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    let uuid = m.probe()["UUID"].clone();
    let expected = format!(
        "{SEED_FSTAB}# replaced by autoheal: {old}\n{}",
        entry(&uuid, &p.mount_point, "ext4")
    );
    assert_eq!(m.fstab(), expected);
    let boot = m.boot(&p, 10, Appears::Now);
    assert_eq!(boot.status, Some(0), "{}", boot.log);
    assert_eq!(m.fstab(), expected);
}

#[test]
fn refuses_a_mount_point_where_something_else_is_mounted() {
    let m = Machine::new(64 * MIB);
    let p = m.params("ext4");
    let boot = m.boot_with(
        &p,
        10,
        Appears::Now,
        "mkdir -p \"$MP\" && mount -t tmpfs squatter \"$MP\"",
        "",
        1,
    );
    assert_eq!(boot.status, Some(1), "{}", boot.log);
    assert!(
        boot.log.contains(&format!(
            "{} has squatter mounted, not {VOLUME_ID}",
            p.mount_point
        )),
        "{}",
        boot.log
    );
    assert_eq!(boot.mounted, "tmpfs squatter");
    assert_eq!(m.fstab(), SEED_FSTAB);
}

#[test]
fn shellcheck_is_clean_on_the_template_and_the_rendered_script() {
    assert!(
        on_path("shellcheck"),
        "shellcheck is needed (tools/install-tools installs it)"
    );
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/autoheal_instance/mount_script.sh");
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.sh");
    // Values as validation lets them through. (A quote in a value, which validation
    // refuses, would be quoted safely but draws shellcheck's SC2089 about literal quotes.)
    let p = MountParams::new(VOLUME_ID, "/dev/sdf", "/srv/app_data-1.0", "xfs");
    fs::write(&rendered, user_data::mount_script(&p).unwrap()).unwrap();
    for script in [template, rendered] {
        let out = Command::new("shellcheck")
            .args(["--severity=style", "--shell=bash"])
            .arg(&script)
            .output()
            .expect("shellcheck runs");
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// cloud-init's way of reading user data (cloudinit/user_data.py and util.py): MIME when
/// `mime-version:` is in the first 4 KiB, parsed with Python's email package, every
/// non-multipart part's payload decoded with `get_payload(decode=True)` and then as UTF-8.
const CLOUD_INIT_READER: &str = r#"
import email, json, sys
raw = sys.stdin.buffer.read()
assert b"mime-version:" in raw[0:4096].lower(), "cloud-init would not see MIME"
msg = email.message_from_string(raw.decode("utf-8"))
parts = []
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    payload = part.get_payload(decode=True)
    if part.get_content_maintype() == "text" and isinstance(payload, bytes):
        charset = part.get_charset()
        codec = charset.input_codec if charset and charset.input_codec else "utf-8"
        payload = payload.decode(codec, "strict")
    parts.append([part.get_content_type(), part.get_filename(), payload])
print(json.dumps(parts))
"#;

/// A part as cloud-init sees it: content type, file name, decoded payload.
type CloudInitPart = (String, Option<String>, String);

fn read_like_cloud_init(doc: &str) -> Vec<CloudInitPart> {
    use std::io::Write as _;
    assert!(on_path("python3"), "python3 is needed");
    let mut child = Command::new("python3")
        .args(["-c", CLOUD_INIT_READER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader's JSON")
}

#[test]
fn cloud_init_reads_each_part_back_as_given() {
    let p = MountParams::new(VOLUME_ID, "/dev/xvdb", "/data", "ext4");
    let script = user_data::mount_script(&p).unwrap();
    let part = |ctype: &str, name: &str, body: &str| {
        (ctype.to_string(), Some(name.to_string()), body.to_string())
    };
    let nested = "Content-Type: multipart/mixed; boundary=\"inner\"\nMIME-Version: 1.0\n\n\
                  --inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho inner\n\
                  --inner--\n";
    let cases: Vec<(Option<&str>, Vec<CloudInitPart>)> = vec![
        (None, vec![]),
        (
            Some("#!/bin/bash\necho 'Grüße, 世界 ✓'\n"),
            vec![part(
                "text/x-shellscript",
                USER_PART_FILENAME,
                "#!/bin/bash\necho 'Grüße, 世界 ✓'\n",
            )],
        ),
        (
            Some("#cloud-config\nruncmd: [ls]\n"),
            vec![part(
                "text/cloud-config",
                USER_PART_FILENAME,
                "#cloud-config\nruncmd: [ls]\n",
            )],
        ),
        (
            Some("#include\nhttps://example.com/more\n"),
            vec![part(
                "text/plain",
                USER_PART_FILENAME,
                "#include\nhttps://example.com/more\n",
            )],
        ),
        (
            Some(nested),
            vec![(
                "text/x-shellscript".to_string(),
                None,
                "#!/bin/sh\necho inner".to_string(),
            )],
        ),
    ];
    for (user, mut expected) in cases {
        expected.insert(0, part("text/x-shellscript", MOUNT_PART_FILENAME, &script));
        let doc = user_data::user_data(&p, user).unwrap();
        assert_eq!(read_like_cloud_init(&doc), expected, "user data {user:?}");
    }
}
