//! Running arm64 (AArch64) Linux programs on an x86_64 machine: qemu-user, explicitly.
//!
//! These machines have no binfmt_misc, so an arm64 binary never runs by itself: it runs as
//! `qemu-aarch64-static -L SYSROOT BINARY`, where the sysroot holds the arm64 glibc a
//! dynamically linked binary loads (`lib/ld-linux-aarch64.so.1`, `libc.so.6`, `libgcc_s.so.1`,
//! ...). tools/install-tools unpacks both from Debian's packages into `.tools/qemu`
//! (`bin/qemu-aarch64-static`, `aarch64-sysroot`); `AUTOHEAL_QEMU_AARCH64` and
//! `AUTOHEAL_AARCH64_SYSROOT` point elsewhere. [`Qemu::find`] says why when they are missing,
//! for the test's skip message.
//!
//! The local AWS runs arm64 functions through the same command ([`Qemu::emulator_command_line`]
//! for its `--aarch64-emulator`); [`Qemu::command`] starts any arm64 program (the arm64
//! provider, say) under it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// ELF `e_machine` of x86-64 code.
pub const EM_X86_64: u16 = 62;
/// ELF `e_machine` of AArch64 code.
pub const EM_AARCH64: u16 = 183;

/// qemu-user for AArch64 and the arm64 sysroot it loads libraries from.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// `qemu-aarch64-static`.
    pub program: PathBuf,
    /// `-L` for qemu: `lib/ld-linux-aarch64.so.1` and the libraries are under it.
    pub sysroot: PathBuf,
}

impl Qemu {
    /// `$AUTOHEAL_QEMU_AARCH64` and `$AUTOHEAL_AARCH64_SYSROOT`, by default
    /// `<tools dir>/qemu/bin/qemu-aarch64-static` and `<tools dir>/qemu/aarch64-sysroot`
    /// (tools/install-tools); `Err` says what is missing and how to get it.
    pub fn find() -> Result<Qemu, String> {
        let qemu_dir = crate::local_aws::tools_dir().join("qemu");
        let from_env = |name: &str, default: PathBuf| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or(default)
        };
        let program = from_env(
            "AUTOHEAL_QEMU_AARCH64",
            qemu_dir.join("bin").join("qemu-aarch64-static"),
        );
        let sysroot = from_env("AUTOHEAL_AARCH64_SYSROOT", qemu_dir.join("aarch64-sysroot"));
        if !is_executable(&program) {
            return Err(format!(
                "no qemu-aarch64 at {} (tools/install-tools installs it; or set \
                 AUTOHEAL_QEMU_AARCH64)",
                program.display()
            ));
        }
        let loader = sysroot.join("lib").join("ld-linux-aarch64.so.1");
        if !loader.exists() {
            return Err(format!(
                "no arm64 sysroot at {} (no {}; tools/install-tools installs it, or set \
                 AUTOHEAL_AARCH64_SYSROOT)",
                sysroot.display(),
                loader.display()
            ));
        }
        Ok(Qemu { program, sysroot })
    }

    /// The command the local AWS's `--aarch64-emulator` takes: `PROGRAM -L SYSROOT`, each word
    /// quoted for the shell (the server splits it with `shlex.split`).
    pub fn emulator_command_line(&self) -> String {
        [
            shell_quote(&self.program.to_string_lossy()),
            "-L".to_string(),
            shell_quote(&self.sysroot.to_string_lossy()),
        ]
        .join(" ")
    }

    /// `qemu-aarch64-static -L SYSROOT <program>`: add the program's arguments, environment, ...
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-L").arg(&self.sysroot).arg(program.as_ref());
        cmd
    }
}

/// The `e_machine` of an ELF file's first bytes ([`EM_AARCH64`], [`EM_X86_64`], ...), `None`
/// when they are not an ELF header.
pub fn elf_machine(bytes: &[u8]) -> Option<u16> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let field = [bytes[18], bytes[19]];
    Some(if bytes[5] == 2 {
        u16::from_be_bytes(field)
    } else {
        u16::from_le_bytes(field)
    })
}

/// Does this machine run AArch64 code natively (no emulator needed)?
pub fn host_is_aarch64() -> bool {
    cfg!(target_arch = "aarch64")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `word` as one POSIX shell word: in single quotes, each `'` as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machine_reads_the_header() {
        let mut header = b"\x7fELF\x02\x01\x01\x00".to_vec();
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&EM_AARCH64.to_le_bytes());
        assert_eq!(elf_machine(&header), Some(EM_AARCH64));
        header[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert_eq!(elf_machine(&header), Some(EM_X86_64));
        assert_eq!(elf_machine(b"#!/bin/sh\necho hello world\n"), None);
        assert_eq!(elf_machine(&header[..19]), None);
    }

    #[test]
    fn the_emulator_command_line_quotes_each_word() {
        let qemu = Qemu {
            program: PathBuf::from("/opt/q emu/qemu-aarch64-static"),
            sysroot: PathBuf::from("/it's/root"),
        };
        assert_eq!(
            qemu.emulator_command_line(),
            r"'/opt/q emu/qemu-aarch64-static' -L '/it'\''s/root'"
        );
    }
}
