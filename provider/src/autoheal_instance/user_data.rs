//! The launch template's user data: the provider's boot script (`mount_script.sh`, which
//! mounts the data volume) and the user's `user_data`, combined into one cloud-init MIME
//! multipart document.
//!
//! cloud-init treats user data as MIME when `MIME-Version:` occurs in its first 4 KiB, runs
//! each `text/x-shellscript` part once per instance, in the order of the parts' file names,
//! and processes `text/cloud-config` parts as configuration. The boot script is part 1,
//! named `00-autoheal-mount.sh`; the user's `user_data`, when set and not empty, is part 2
//! (file name `10-user-data`) typed by how it starts:
//!
//! - `#!` (a script): `text/x-shellscript`, so it runs after the boot script;
//! - a first line `#cloud-config`: `text/cloud-config`;
//! - a MIME document of its own (cloud-init's test: `MIME-Version:` in its first 4 KiB, and
//!   it starts with a header line): embedded as it is, headers included, as a nested
//!   multipart part, which cloud-init walks like the top level;
//! - anything else (`#include`, `#cloud-boothook`, `## template: jinja`,
//!   `#cloud-config-archive`, ...): `text/plain`, for which cloud-init detects the type from
//!   the first line exactly as it does for user data given on its own.
//!
//! What the user's parts can rely on. cloud-init runs script parts in file-name order from
//! one directory, whatever the earlier ones did; `runcmd` is written there too (as
//! `runcmd`), so it runs after the boot script as well. When the boot script fails without
//! the volume mounted, it takes the executable bits off the files that sort after its own,
//! and cloud-init skips them (see `mount_script.sh`): script parts and `runcmd` run only with
//! the volume mounted. Cloud-config modules that run before user scripts (`bootcmd`,
//! `write_files`, `packages`, `users`, ...) and `#cloud-boothook` parts run before the
//! volume is mounted, and regardless of it.
//!
//! A part that is not ASCII is base64-encoded: cloud-init reads payloads through Python's
//! email package, which turns non-ASCII text in a 7bit/8bit part into `\uXXXX` escapes or
//! fails to decode it.
//!
//! EC2 allows 16 KiB of user data before base64. The schema gives the user 12 KiB
//! ([`USER_DATA_MAX_BYTES`]), which leaves [`MOUNT_SCRIPT_BUDGET_BYTES`] for the boot script
//! and all the MIME framing; a test holds the script to that. Non-ASCII `user_data` grows by
//! a third in base64 and can then exceed EC2's limit: [`user_data`] answers
//! [`UserDataError::TooLarge`] rather than send what EC2 would refuse.

use base64::Engine as _;

use super::schema::{FILESYSTEMS, USER_DATA_MAX_BYTES};

/// The boot script as written; [`mount_script`] renders it.
pub const MOUNT_SCRIPT_TEMPLATE: &str = include_str!("mount_script.sh");

/// EC2's limit on user data, before base64.
pub const EC2_USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// What the boot script and the MIME framing may use of EC2's limit: what the schema leaves
/// after the user's [`USER_DATA_MAX_BYTES`].
pub const MOUNT_SCRIPT_BUDGET_BYTES: usize = EC2_USER_DATA_MAX_BYTES - USER_DATA_MAX_BYTES;

/// How long the boot script waits for the data volume by default: the longest an instance
/// can be held by the launch hook (7200 s, AWS's maximum heartbeat timeout and the
/// schema's maximum `lifecycle_hook_timeout`) plus five minutes. While the hook holds the
/// instance the attachment Lambda may still deliver the volume (the old instance must
/// terminate first), so giving up earlier could leave a served instance without its data;
/// an instance whose hook ends without the volume is terminated anyway.
pub const DEFAULT_VOLUME_WAIT_SECONDS: u32 = 7200 + 300;

/// The file names cloud-init gives the two parts; it runs scripts in file-name order.
pub const MOUNT_PART_FILENAME: &str = "00-autoheal-mount.sh";
pub const USER_PART_FILENAME: &str = "10-user-data";

const PARAMETERS_BEGIN: &str = "# BEGIN PARAMETERS\n";
const PARAMETERS_END: &str = "# END PARAMETERS\n";

/// What the boot script needs to know. All of it goes into the script as shell-quoted
/// values, after [`MountParams::check`] found nothing wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountParams {
    /// The data volume (`vol-...`): its NVMe by-id name is derived from it.
    pub volume_id: String,
    /// The device name the volume is attached as (`device_name`), looked for on Xen.
    pub device_name: String,
    /// `mount_point`.
    pub mount_point: String,
    /// `filesystem`: `ext4` or `xfs`.
    pub filesystem: String,
}

impl MountParams {
    pub fn new(
        volume_id: impl Into<String>,
        device_name: impl Into<String>,
        mount_point: impl Into<String>,
        filesystem: impl Into<String>,
    ) -> Self {
        MountParams {
            volume_id: volume_id.into(),
            device_name: device_name.into(),
            mount_point: mount_point.into(),
            filesystem: filesystem.into(),
        }
    }

    /// `Err` with the first value the script cannot use. Validation already refuses bad `device_name`,
    /// `mount_point` and `filesystem` values at plan time; this repeats the checks the script
    /// relies on, so that nothing unchecked reaches an instance.
    pub fn check(&self) -> Result<(), UserDataError> {
        let bad = |parameter, value: &str, reason| {
            Err(UserDataError::BadParameter {
                parameter,
                value: value.to_string(),
                reason,
            })
        };
        let hex = |s: &str| {
            (s.len() == 8 || s.len() == 17)
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !self.volume_id.strip_prefix("vol-").is_some_and(hex) {
            return bad(
                "volume_id",
                &self.volume_id,
                "not vol- and 8 or 17 hexadecimal digits",
            );
        }
        let letter = self
            .device_name
            .strip_prefix("/dev/sd")
            .or_else(|| self.device_name.strip_prefix("/dev/xvd"));
        if !letter.is_some_and(|l| l.len() == 1 && l.bytes().all(|b| b.is_ascii_lowercase())) {
            return bad(
                "device_name",
                &self.device_name,
                "not /dev/sdX or /dev/xvdX",
            );
        }
        let mp = &self.mount_point;
        if !mp.starts_with('/') || mp == "/" {
            return bad(
                "mount_point",
                mp,
                "not an absolute path below the root directory",
            );
        }
        // fstab separates its fields with white space, and the script takes the path as one
        // word: no white space, no control characters.
        if mp.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(
                "mount_point",
                mp,
                "it contains white space or control characters",
            );
        }
        if !FILESYSTEMS.contains(&self.filesystem.as_str()) {
            return bad("filesystem", &self.filesystem, "not ext4 or xfs");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("the boot script cannot use {parameter} {value:?}: {reason}")]
    BadParameter {
        parameter: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "the user data would be {bytes} bytes, more than EC2's limit of {limit} bytes (the \
         provider's boot script and the MIME framing included; `user_data` that is not plain \
         ASCII is base64-encoded, which makes it a third larger). Shorten `user_data`, or \
         fetch a larger script from S3 in a short one"
    )]
    TooLarge { bytes: usize, limit: usize },
    #[error("the built-in boot script has no parameter block (a bug in the provider)")]
    Template,
}

/// `value` as one shell word that the shell reads back as exactly `value`: single-quoted,
/// with each `'` written as `'\''`. Nothing is special inside single quotes, not even
/// newlines, `$(...)` or backslashes.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The boot script with `params` in its parameter block, without comment and blank lines,
/// waiting [`DEFAULT_VOLUME_WAIT_SECONDS`] for the volume: what [`user_data`] sends.
pub fn mount_script(params: &MountParams) -> Result<String, UserDataError> {
    mount_script_waiting(params, DEFAULT_VOLUME_WAIT_SECONDS)
}

/// [`mount_script`] with another bound on the wait for the volume (the script's tests use a
/// few seconds).
///
/// Comments are dropped from the template before the values go in, so a value can never be
/// mistaken for a comment line.
pub fn mount_script_waiting(
    params: &MountParams,
    wait_seconds: u32,
) -> Result<String, UserDataError> {
    params.check()?;
    let (head, rest) = MOUNT_SCRIPT_TEMPLATE
        .split_once(PARAMETERS_BEGIN)
        .ok_or(UserDataError::Template)?;
    let (_, tail) = rest
        .split_once(PARAMETERS_END)
        .ok_or(UserDataError::Template)?;
    let assignments = [
        ("VOLUME_ID", params.volume_id.clone()),
        ("DEVICE_NAME", params.device_name.clone()),
        ("MOUNT_POINT", params.mount_point.clone()),
        ("FILESYSTEM", params.filesystem.clone()),
        ("WAIT_SECONDS", wait_seconds.to_string()),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}\n", shell_quote(value)))
    .collect::<String>();
    Ok(format!(
        "{}{assignments}{}",
        strip_comments(head, true),
        strip_comments(tail, false)
    ))
}

/// Drops comment lines, blank lines and indentation; keeps the first line when it is the
/// shebang. (Indentation means nothing to the shell outside here-documents and multi-line
/// strings, which the script does not use.)
fn strip_comments(script: &str, has_shebang: bool) -> String {
    let mut out = String::with_capacity(script.len());
    for (i, line) in script.lines().enumerate() {
        let code = line.trim_start();
        let shebang = has_shebang && i == 0 && line.starts_with("#!");
        if shebang || !(code.is_empty() || code.starts_with('#')) {
            out.push_str(code);
            out.push('\n');
        }
    }
    out
}

/// One part of the multipart document.
struct Part {
    /// The part's header lines, each ending in a newline, or empty for a nested MIME
    /// document that brings its own headers in `body`.
    headers: String,
    body: String,
}

impl Part {
    fn text(content_type: &str, filename: &str, body: &str) -> Part {
        let mut headers = String::new();
        let body = if body.is_ascii() {
            headers.push_str(&format!(
                "Content-Type: {content_type}; charset=\"us-ascii\"\n\
                 Content-Transfer-Encoding: 7bit\n"
            ));
            body.to_string()
        } else {
            headers.push_str(&format!(
                "Content-Type: {content_type}; charset=\"utf-8\"\n\
                 Content-Transfer-Encoding: base64\n"
            ));
            base64_lines(body.as_bytes())
        };
        headers.push_str(&format!(
            "Content-Disposition: attachment; filename=\"{filename}\"\n"
        ));
        Part { headers, body }
    }
}

/// Base64 in lines of 76 characters, as MIME wants it.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for chunk in encoded.as_bytes().chunks(76) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

/// Whether cloud-init would read `text` as a MIME document: its own test (`mime-version:` in
/// the first 4096 bytes, any case), and a first line that is a header (`Name: value`).
fn is_mime_document(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(4096)];
    let mentions = head
        .windows(b"mime-version:".len())
        .any(|w| w.eq_ignore_ascii_case(b"mime-version:"));
    let first_line = text.lines().next().unwrap_or("");
    let header = first_line.split_once(':').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    mentions && header
}

/// The part holding the user's `user_data` (see the module documentation for the types).
fn user_part(user: &str) -> Part {
    let first_line = user.lines().next().unwrap_or("").trim_end();
    if user.starts_with("#!") {
        Part::text("text/x-shellscript", USER_PART_FILENAME, user)
    } else if first_line == "#cloud-config" {
        Part::text("text/cloud-config", USER_PART_FILENAME, user)
    } else if is_mime_document(user) {
        Part {
            headers: String::new(),
            body: user.to_string(),
        }
    } else {
        Part::text("text/plain", USER_PART_FILENAME, user)
    }
}

/// A boundary that occurs in no part: the first of `autoheal-boundary-0`, `-1`, ... that
/// none contains. Deterministic, so the same inputs give the same launch template.
fn boundary_for(parts: &[Part]) -> String {
    (0u64..)
        .map(|n| format!("autoheal-boundary-{n}"))
        .find(|b| {
            parts
                .iter()
                .all(|p| !p.headers.contains(b.as_str()) && !p.body.contains(b.as_str()))
        })
        .unwrap_or_default()
}

/// The launch template's user data, not yet base64-encoded: a MIME multipart document with
/// the boot script and, when `user_user_data` is set and not empty, the user's `user_data`.
pub fn user_data(
    params: &MountParams,
    user_user_data: Option<&str>,
) -> Result<String, UserDataError> {
    let mut parts = vec![Part::text(
        "text/x-shellscript",
        MOUNT_PART_FILENAME,
        &mount_script(params)?,
    )];
    if let Some(user) = user_user_data.filter(|u| !u.is_empty()) {
        parts.push(user_part(user));
    }
    let boundary = boundary_for(&parts);
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
    for part in &parts {
        out.push_str(&format!("--{boundary}\n"));
        // A nested MIME document brings its own header block and the blank line after it.
        if !part.headers.is_empty() {
            out.push_str(&part.headers);
            out.push('\n');
        }
        out.push_str(&part.body);
        // The line break before a delimiter belongs to the delimiter, so this one is not
        // part of the body and the body comes back byte for byte.
        out.push('\n');
    }
    out.push_str(&format!("--{boundary}--\n"));
    if out.len() > EC2_USER_DATA_MAX_BYTES {
        return Err(UserDataError::TooLarge {
            bytes: out.len(),
            limit: EC2_USER_DATA_MAX_BYTES,
        });
    }
    Ok(out)
}

/// [`user_data`] base64-encoded, as a launch template's `UserData` must be.
pub fn user_data_base64(
    params: &MountParams,
    user_user_data: Option<&str>,
) -> Result<String, UserDataError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(user_data(params, user_user_data)?))
}

/// What [`parse_user_data`] reads back from user data this module made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedUserData {
    pub mount: MountParams,
    /// The user's `user_data`; `None` when the document has no second part (it was unset or
    /// empty).
    pub user_data: Option<String>,
}

/// Reads back user data made by [`user_data`]: the boot script's parameters and the user's
/// `user_data`, byte for byte. For import and refresh, since a launch template version
/// keeps only the encoded document. `None` for user data made any other way.
pub fn parse_user_data(doc: &str) -> Option<ParsedUserData> {
    let (top, body) = doc.split_once("\n\n")?;
    let boundary = top
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/mixed; boundary=\""))?
        .strip_suffix('"')?;
    let delimiter = format!("--{boundary}");
    let body = body
        .strip_prefix(&format!("{delimiter}\n"))?
        .strip_suffix(&format!("\n{delimiter}--\n"))?;
    // The boundary occurs in no part, so splitting at delimiter lines is exact.
    let separator = format!("\n{delimiter}\n");
    let mut parts = body.split(&separator);
    let script = typed_part_body(parts.next()?, MOUNT_PART_FILENAME)?;
    let user_data = parts
        .next()
        .map(|p| typed_part_body(p, USER_PART_FILENAME).unwrap_or_else(|| p.to_string()));
    if parts.next().is_some() {
        return None;
    }
    let mount = parse_parameters(&script)?;
    mount.check().ok()?;
    Some(ParsedUserData { mount, user_data })
}

/// [`parse_user_data`] of a launch template's base64 `UserData`.
pub fn parse_user_data_base64(encoded: &str) -> Option<ParsedUserData> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    parse_user_data(&String::from_utf8(bytes).ok()?)
}

/// The decoded body of a part [`Part::text`] made with `filename`; `None` for any other part
/// (a nested MIME document of the user's).
fn typed_part_body(part: &str, filename: &str) -> Option<String> {
    let (headers, body) = part.split_once("\n\n")?;
    let lines: Vec<&str> = headers.lines().collect();
    let [content_type, encoding, disposition] = lines.as_slice() else {
        return None;
    };
    if !content_type.starts_with("Content-Type: text/")
        || *disposition != format!("Content-Disposition: attachment; filename=\"{filename}\"")
    {
        return None;
    }
    match *encoding {
        "Content-Transfer-Encoding: 7bit" => Some(body.to_string()),
        "Content-Transfer-Encoding: base64" => {
            let joined: String = body.lines().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

/// The values of the rendered script's parameter block.
fn parse_parameters(script: &str) -> Option<MountParams> {
    let value = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .and_then(shell_unquote)
    };
    Some(MountParams {
        volume_id: value("VOLUME_ID")?,
        device_name: value("DEVICE_NAME")?,
        mount_point: value("MOUNT_POINT")?,
        filesystem: value("FILESYSTEM")?,
    })
}

/// The inverse of [`shell_quote`]: single-quoted runs joined by `\'`. `None` for any other
/// shell syntax.
fn shell_unquote(mut word: &str) -> Option<String> {
    let mut out = String::new();
    while !word.is_empty() {
        if let Some(rest) = word.strip_prefix("\\'") {
            out.push('\'');
            word = rest;
        } else {
            let (quoted, rest) = word.strip_prefix('\'')?.split_once('\'')?;
            out.push_str(quoted);
            word = rest;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn params() -> MountParams {
        MountParams::new("vol-0123456789abcdef0", "/dev/xvdb", "/data", "ext4")
    }

    /// The longest values validation lets through.
    fn longest_params() -> MountParams {
        MountParams {
            volume_id: "vol-0123456789abcdef0".into(),
            device_name: "/dev/xvdz".into(),
            // Validation puts no length limit on mount_point; Linux's PATH_MAX is 4096, but
            // a real mount point is short. 255 (one NAME_MAX component) is budgeted.
            mount_point: format!("/{}", "m".repeat(254)),
            filesystem: "ext4".into(),
        }
    }

    /// A parsed part: its headers (lower-cased names) and body.
    #[derive(Debug)]
    struct Parsed {
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Parsed {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
        let (head, body) = text.split_once("\n\n").expect("a header block");
        let headers = head
            .lines()
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("Name: value");
                (n.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        (headers, body)
    }

    /// Parses the document back, the RFC 2046 way: the boundary from the top-level header,
    /// parts between delimiter lines, the line break before a delimiter not part of a body.
    fn parse(doc: &str) -> (Vec<(String, String)>, Vec<Parsed>) {
        let (top, body) = split_headers(doc);
        let ctype = &top
            .iter()
            .find(|(n, _)| n == "content-type")
            .expect("content-type")
            .1;
        let boundary = ctype
            .split_once("boundary=\"")
            .and_then(|(_, b)| b.strip_suffix('"'))
            .expect("a quoted boundary");
        let delimiter = format!("--{boundary}");
        let body = body
            .strip_prefix(&format!("{delimiter}\n"))
            .expect("starts with a delimiter");
        let body = body
            .strip_suffix(&format!("\n{delimiter}--\n"))
            .expect("ends with the close delimiter");
        let parts = body
            .split(&format!("\n{delimiter}\n"))
            .map(|p| {
                let (headers, body) = split_headers(p);
                Parsed {
                    headers,
                    body: body.to_string(),
                }
            })
            .collect();
        (top, parts)
    }

    fn decoded(p: &Parsed) -> String {
        match p.header("content-transfer-encoding") {
            Some("base64") => {
                let joined: String = p.body.lines().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .expect("base64"),
                )
                .expect("utf-8")
            }
            _ => p.body.clone(),
        }
    }

    #[test]
    fn the_script_is_rendered_with_quoted_values_and_no_comments() {
        let script = mount_script(&params()).unwrap();
        assert!(
            script.starts_with("#!/bin/bash\nset -euo pipefail\n"),
            "{script}"
        );
        assert!(script.contains(
            "VOLUME_ID='vol-0123456789abcdef0'\nDEVICE_NAME='/dev/xvdb'\n\
             MOUNT_POINT='/data'\nFILESYSTEM='ext4'\nWAIT_SECONDS='7500'\n"
        ));
        // The template's placeholder values are gone with the markers.
        assert!(!script.contains("PARAMETERS"));
        assert!(!script.contains("vol-00000000000000000"));
        for line in script.lines().skip(1) {
            assert!(!line.trim_start().starts_with('#'), "{line}");
            assert!(!line.trim().is_empty());
            assert_eq!(line, line.trim_start(), "indented");
        }
        // The template has a parameter block the renderer found.
        assert!(MOUNT_SCRIPT_TEMPLATE.contains(PARAMETERS_BEGIN));
        assert!(MOUNT_SCRIPT_TEMPLATE.contains(PARAMETERS_END));
    }

    /// Bash reads every quoted value back as exactly the value, whatever it holds.
    #[test]
    // The quoted values run in the instance's bash (Linux); a Windows host may have no bash,
    // or WSL's bash.exe first on PATH, which would test something else.
    #[cfg_attr(windows, ignore = "needs a Unix bash; runs on Linux and macOS")]
    fn shell_quoting_survives_hostile_values() {
        let hostile = [
            "/data dir",
            "/it's",
            "''",
            "'",
            "$(touch /tmp/pwned)",
            "`id`",
            "a\\b",
            "a\nb\n# c",
            "\"double\"",
            "$HOME ${x} $((1+1))",
            "-n",
            "*",
            "",
            "ü ✓",
        ];
        for value in hostile {
            let script = format!("x={}\nprintf '%s' \"$x\"", shell_quote(value));
            let out = Command::new("bash")
                .args(["--noprofile", "--norc", "-c", &script])
                .output()
                .expect("bash runs");
            assert!(out.status.success(), "{value:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), value, "{value:?}");
        }
    }

    #[test]
    fn values_the_script_cannot_use_are_refused() {
        let with = |f: &dyn Fn(&mut MountParams)| {
            let mut p = params();
            f(&mut p);
            p
        };
        let bad = [
            with(&|p| p.volume_id = "vol-123".into()),
            with(&|p| p.volume_id = "vol-0123456789ABCDEF0".into()),
            with(&|p| p.volume_id = "vol-0123456789abcdef0'; reboot; '".into()),
            with(&|p| p.device_name = "/dev/nvme1n1".into()),
            with(&|p| p.device_name = "/dev/sdf1".into()),
            with(&|p| p.mount_point = "data".into()),
            with(&|p| p.mount_point = "/".into()),
            with(&|p| p.mount_point = "/my data".into()),
            with(&|p| p.mount_point = "/data\n# x".into()),
            with(&|p| p.mount_point = "/data\0".into()),
            with(&|p| p.filesystem = "btrfs".into()),
        ];
        for p in bad {
            let err = user_data(&p, None).unwrap_err();
            assert!(
                matches!(err, UserDataError::BadParameter { .. }),
                "{p:?}: {err}"
            );
        }
        // Quotes and `$(...)` are not refused here (validation refuses them at plan time)
        // but are quoted safely: the assignment is one line, the value verbatim.
        let p = with(&|p| p.mount_point = "/a'b$(id)".into());
        let script = mount_script(&p).unwrap();
        assert!(
            script.contains("\nMOUNT_POINT='/a'\\''b$(id)'\n"),
            "{script}"
        );
    }

    #[test]
    fn mime_structure_with_a_shell_script() {
        let user = "#!/bin/sh\necho hello\n";
        let doc = user_data(&params(), Some(user)).unwrap();
        assert!(doc.is_ascii());
        // cloud-init's test for MIME user data.
        assert!(doc[..4096.min(doc.len())]
            .to_ascii_lowercase()
            .contains("mime-version:"));
        let (top, parts) = parse(&doc);
        assert!(top.iter().any(|(n, v)| n == "mime-version" && v == "1.0"));
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].header("content-type"),
            Some("text/x-shellscript; charset=\"us-ascii\"")
        );
        assert_eq!(
            parts[0].header("content-disposition"),
            Some("attachment; filename=\"00-autoheal-mount.sh\"")
        );
        assert_eq!(parts[0].body, mount_script(&params()).unwrap());
        assert_eq!(
            parts[1].header("content-type"),
            Some("text/x-shellscript; charset=\"us-ascii\"")
        );
        assert_eq!(
            parts[1].header("content-disposition"),
            Some("attachment; filename=\"10-user-data\"")
        );
        assert_eq!(parts[1].body, user);
        // The mount script sorts first, which is the order cloud-init runs scripts in.
        assert!(MOUNT_PART_FILENAME < USER_PART_FILENAME);
        // Same inputs, same document: the launch template does not change spuriously.
        assert_eq!(doc, user_data(&params(), Some(user)).unwrap());
    }

    #[test]
    fn user_data_types() {
        let cases = [
            ("#cloud-config\npackages: [htop]\n", "text/cloud-config"),
            ("#cloud-config\r\nruncmd: [ls]\r\n", "text/cloud-config"),
            ("#cloud-config-archive\n- content: x\n", "text/plain"),
            ("#include\nhttps://example.com/x\n", "text/plain"),
            ("#cloud-boothook\n#!/bin/sh\necho\n", "text/plain"),
            ("echo no shebang\n", "text/plain"),
            ("#!/usr/bin/env python3\nprint(1)", "text/x-shellscript"),
        ];
        for (user, ctype) in cases {
            let (_, parts) = parse(&user_data(&params(), Some(user)).unwrap());
            assert_eq!(parts.len(), 2, "{user:?}");
            let got = parts[1].header("content-type").unwrap();
            assert!(got.starts_with(&format!("{ctype};")), "{user:?}: {got}");
            assert_eq!(decoded(&parts[1]), user);
        }
        // Nothing to add: no second part.
        for user in [None, Some("")] {
            let (_, parts) = parse(&user_data(&params(), user).unwrap());
            assert_eq!(parts.len(), 1);
        }
    }

    #[test]
    fn non_ascii_user_data_is_base64_and_comes_back_intact() {
        let user = "#!/bin/bash\necho 'Grüße, 世界 ✓'\n";
        let doc = user_data(&params(), Some(user)).unwrap();
        assert!(doc.is_ascii(), "the document itself stays ASCII");
        let (_, parts) = parse(&doc);
        assert_eq!(
            parts[1].header("content-type"),
            Some("text/x-shellscript; charset=\"utf-8\"")
        );
        assert_eq!(parts[1].header("content-transfer-encoding"), Some("base64"));
        assert!(parts[1].body.lines().all(|l| l.len() <= 76));
        assert_eq!(decoded(&parts[1]), user);
    }

    #[test]
    fn a_users_mime_document_is_nested_as_it_is() {
        let user = "Content-Type: multipart/mixed; boundary=\"inner\"\nMIME-Version: 1.0\n\n\
                    --inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho a\n\
                    --inner--\n";
        let doc = user_data(&params(), Some(user)).unwrap();
        let (_, parts) = parse(&doc);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[1].header("content-type"),
            Some("multipart/mixed; boundary=\"inner\"")
        );
        // The user's document is in the outer one byte for byte.
        assert!(
            doc.contains(&format!("\n{user}\n--autoheal-boundary-0--\n")),
            "{doc}"
        );
    }

    #[test]
    fn the_boundary_occurs_in_no_part() {
        let user = "#!/bin/sh\n# --autoheal-boundary-0\n# autoheal-boundary-1--\n";
        let doc = user_data(&params(), Some(user)).unwrap();
        let (top, parts) = parse(&doc);
        let ctype = &top.iter().find(|(n, _)| n == "content-type").unwrap().1;
        assert!(
            ctype.ends_with("boundary=\"autoheal-boundary-2\""),
            "{ctype}"
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].body, user);
    }

    #[test]
    fn the_script_and_framing_fit_their_budget() {
        let alone = user_data(&longest_params(), None).unwrap();
        // The longest wait (u32::MAX) adds 6 bytes to the default's; keep room for it.
        let longest_wait = mount_script_waiting(&longest_params(), u32::MAX).unwrap();
        let default_wait = mount_script(&longest_params()).unwrap();
        let worst = alone.len() + longest_wait.len() - default_wait.len();
        assert!(
            worst <= MOUNT_SCRIPT_BUDGET_BYTES,
            "{worst} bytes, budget {MOUNT_SCRIPT_BUDGET_BYTES}"
        );
        assert!(
            alone.len() <= MOUNT_SCRIPT_BUDGET_BYTES,
            "{} bytes",
            alone.len()
        );
        // With the longest ASCII user_data the schema allows, EC2's limit holds, whatever
        // the content's type.
        for start in ["#!/bin/sh\n", "#cloud-config\n", "x"] {
            let user = format!("{start}{}", "y".repeat(USER_DATA_MAX_BYTES - start.len()));
            let doc = user_data(&longest_params(), Some(&user)).unwrap();
            assert!(
                doc.len() <= EC2_USER_DATA_MAX_BYTES,
                "{start:?}: {} bytes",
                doc.len()
            );
        }
    }

    #[test]
    fn too_much_user_data_is_an_error_not_a_refusal_by_ec2() {
        // 12 KiB of non-ASCII text passes validation's byte count but is 16 KiB in base64.
        let user = format!(
            "#!/bin/sh\n# {}",
            "é".repeat((USER_DATA_MAX_BYTES - 12) / 2)
        );
        assert!(user.len() <= USER_DATA_MAX_BYTES);
        let err = user_data(&params(), Some(&user)).unwrap_err();
        let UserDataError::TooLarge { bytes, limit } = &err else {
            panic!("{err}")
        };
        assert!(bytes > limit);
        assert_eq!(*limit, 16384);
        assert!(err.to_string().contains("base64"));
    }

    #[test]
    fn base64_for_the_launch_template() {
        let raw = user_data(&params(), Some("#!/bin/sh\n")).unwrap();
        let encoded = user_data_base64(&params(), Some("#!/bin/sh\n")).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&encoded)
                .unwrap(),
            raw.as_bytes()
        );
        assert!(!encoded.contains('\n'));
    }

    #[test]
    fn user_data_reads_back() {
        for user in [
            None,
            Some("#!/bin/sh\necho hi\n"),
            Some("#cloud-config\nruncmd: [ls]"),
            Some("\n\nstarts with blank lines"),
            Some("#!/bin/bash\necho 'Grüße'\n"),
            Some("Content-Type: text/x-shellscript\nMIME-Version: 1.0\n\n#!/bin/sh\n"),
        ] {
            let mut p = params();
            p.mount_point = "/srv/it's-data".into();
            let doc = user_data(&p, user).unwrap();
            let parsed = parse_user_data(&doc).expect("parses");
            assert_eq!(parsed.mount, p);
            assert_eq!(parsed.user_data.as_deref(), user);
            let b64 = user_data_base64(&p, user).unwrap();
            assert_eq!(parse_user_data_base64(&b64), Some(parsed));
        }
        assert_eq!(parse_user_data("#!/bin/sh\necho not ours\n"), None);
        assert_eq!(parse_user_data_base64("not base64!"), None);
        assert_eq!(shell_unquote("'a'\\''b'"), Some("a'b".into()));
        assert_eq!(shell_unquote("a"), None);
        assert_eq!(shell_unquote("'a"), None);
    }

    proptest::proptest! {
        /// Whatever the user's text, the document carries it and the parameters exactly, and
        /// the boundary is not in it.
        #[test]
        fn any_user_data_round_trips(
            user in "(#!|#cloud-config\n|Content-Type: x\nMIME-Version: 1.0\n\n|)\\PC{0,300}(--autoheal-boundary-[0-2])?\\PC{0,50}",
            mount_point in "/[a-zA-Z0-9._'$()-]{1,40}",
            xfs in proptest::bool::ANY,
            letter in "[f-z]",
        ) {
            let p = MountParams::new(
                "vol-0123456789abcdef0",
                format!("/dev/sd{letter}"),
                mount_point,
                if xfs { "xfs" } else { "ext4" },
            );
            let doc = user_data(&p, Some(&user)).unwrap();
            let parsed = parse_user_data(&doc).unwrap();
            proptest::prop_assert_eq!(parsed.mount, p);
            proptest::prop_assert_eq!(parsed.user_data, (!user.is_empty()).then_some(user));
        }
    }
}
