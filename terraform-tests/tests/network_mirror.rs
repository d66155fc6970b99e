//! The release installed from a company's internal network mirror (issue 16, point 4): the
//! output of the real `terraform providers mirror`, served over HTTPS by a server whose
//! certificate comes from the company's own CA, which Terraform trusts through
//! `SSL_CERT_FILE`. Both Terraform versions install the provider from it and plan with it; a
//! Terraform that does not trust the CA, and a mirror whose zip was changed after `providers
//! mirror` hashed it, are refused.
//!
//! What Terraform's documentation says ("Provider Network Mirror Protocol", in its internals
//! section; the CLI configuration's `network_mirror`; `terraform providers mirror`), and this
//! test relies on:
//! * a mirror is a base URL that "must use the scheme `https:`", given in the CLI config's
//!   `provider_installation` block, and mirror servers "are subject to TLS certificate
//!   checks";
//! * `:hostname/:namespace/:type/index.json` lists the versions, `{"versions": {"0.1.0":
//!   {}}}`; `:hostname/:namespace/:type/:version.json` lists an archive per platform, its
//!   `url` relative to that JSON file and its `hashes`; a static website serves them as
//!   `.json` files "with the `application/json` media type";
//! * "If the response includes at least one hash, Terraform will [...] verify that the
//!   downloaded package matches that hash";
//! * `terraform providers mirror` downloads the packages "from their origin registries" and
//!   writes the zips with `index.json` and the version's `.json` file, which "when placed in
//!   a static website hosting system, produce responses compatible with the provider mirror
//!   protocol" (the "Provider Mirror as a Static Website" section): what a company does.
//!
//! What Terraform's source says, and shapes the test:
//! * `terraform providers mirror` "always consults the origin registry" and ignores the CLI
//!   config's `provider_installation` (internal/command/providers_mirror.go, 1.0.3 and 1.11.4
//!   alike): given a CLI config with only a `filesystem_mirror`, it still asks
//!   registry.terraform.io. So it reads from a stand-in for the registry instead: the same
//!   HTTPS server serves the Provider Registry Protocol's answers as static files (versions,
//!   download metadata, the release's zip, SHA256SUMS and a detached GPG signature of it made
//!   with a throwaway key), and a `host "registry.terraform.io"` block in the CLI config
//!   (service discovery override, cliconfig's `ConfigHost`) points `providers.v1` there.
//!   `providers mirror` checks the zip against the sums and the signature, as it would at
//!   registry.terraform.io.
//! * A package from a mirror is not signed, so `terraform init` records in the lock file only
//!   the `h1:` hash it computes itself from the package, not `zh:` hashes
//!   (internal/providercache/installer.go: "We'll trust new hashes from upstream only if they
//!   were verified as signed"; 1.11.4 says so in an "Incomplete lock file information"
//!   warning). So the lock file is checked for the `h1:` of the released zip's content,
//!   computed here independently, and any `zh:` that a later Terraform may add must be the
//!   zip's SHA-256.
//! * Terraform is written in Go, whose TLS client on Linux takes its trusted roots from the
//!   file named by `SSL_CERT_FILE` (plus the directories of `SSL_CERT_DIR`): no Terraform
//!   setting is needed for a private CA.
//!
//! The server (fixtures/network_mirror/serve_https.py, Python's http.server with ssl) binds
//! 127.0.0.1 on a port the OS picks and logs every request it answers, so the test proves that
//! Terraform's requests reached it; a guard stops it when the test ends, also on a panic. The
//! certificates are made with the `openssl` CLI, in a temp dir; the signing key with `gpg`, in
//! a GnuPG home of its own ([`terraform_tests::gpg`]). The release's names, the run of
//! `tools/release --no-build` and the hashes come from [`terraform_tests::release`]. No AWS
//! call is made: the plan's endpoints point at a [`ConnectionCounter`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use terraform_tests::gpg::GnupgHome;
use terraform_tests::process::spawn;
use terraform_tests::release::{
    h1_of_zip, run_release, sha256_hex, sums_name, write_pinned_config, zip_name, Artifacts,
    PLATFORM, VERSION,
};
use terraform_tests::tool::run_checked;
use terraform_tests::{
    terraform_versions, workspace_root, CommandOutput, ConnectionCounter, Terraform,
    TerraformBinary, PROVIDER_ADDRESS, PROVIDER_SOURCE,
};

/// Each Terraform command here takes a second or two; a hang must fail well within the
/// test's two-minute budget rather than after the runner's default of 15 minutes.
const TERRAFORM_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the server may take to print its port, and to log a handshake it saw fail.
const SERVER_WAIT: Duration = Duration::from_secs(20);

/// `tools/release --no-build --out DIR`; this test takes the amd64 zip, the sums and the
/// manifest from it. The files are taken by name: tools/release may pack more than these (an
/// arm64 zip, a signature), which is not this test's business.
fn release_into(dir: &Path) -> Artifacts {
    let (release, out) = run_release(dir, &[], &[]);
    for path in [&release.zip, &release.sums, &release.manifest] {
        assert!(
            path.is_file() && out.stdout.lines().any(|l| Path::new(l) == path),
            "tools/release should have written and listed {}:\n{}\n{}",
            path.display(),
            out.stdout,
            out.stderr
        );
    }
    release
}

/// Changes one byte of the binary inside the zip and packs it again under the same entry
/// (name, mode, date): still a well-formed provider zip, only its content differs from what
/// `providers mirror` hashed. (A byte flipped in the compressed stream would instead fail as
/// a corrupt zip, which is not the check this is meant to trigger.)
fn change_one_byte_inside(zip: &Path) {
    const TAMPER: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    (entry,) = z.infolist()
    data = bytearray(z.read(entry))
data[len(data) // 2] ^= 0x01
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(entry, bytes(data), compress_type=zipfile.ZIP_DEFLATED)
"#;
    run_checked(
        "changing a byte inside the zip",
        Command::new("python3").arg("-c").arg(TAMPER).arg(zip),
    );
}

/// The company's CA, a certificate for 127.0.0.1 that it signed, and an unrelated CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A CA certificate as Go's verifier wants one (CA:TRUE, may sign certificates).
const CA_CONFIG: &str = "[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = NAME
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
";

/// The server's certificate: Go (since 1.15) matches the host only against the subject
/// alternative names, so the address must be an IP SAN, not just the common name.
const SERVER_EXTENSIONS: &str = "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
authorityKeyIdentifier = keyid
";

/// A self-signed CA named `name`, its key in `DIR/STEM.key` and certificate in `DIR/STEM.pem`.
fn make_ca(dir: &Path, stem: &str, name: &str) -> PathBuf {
    let config = dir.join(format!("{stem}.cnf"));
    std::fs::write(&config, CA_CONFIG.replace("NAME", name)).unwrap();
    let pem = dir.join(format!("{stem}.pem"));
    run_checked(
        "openssl req -x509 (CA)",
        Command::new("openssl")
            .args(["req", "-x509", "-config"])
            .arg(&config)
            .args([
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-keyout"])
            .arg(dir.join(format!("{stem}.key")))
            .arg("-out")
            .arg(&pem),
    );
    pem
}

fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let ca = make_ca(dir, "ca", "autoheal network mirror test CA");
    let other_ca = make_ca(dir, "other-ca", "an unrelated CA");
    let server_key = dir.join("server.key");
    let csr = dir.join("server.csr");
    run_checked(
        "openssl req (server)",
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&server_key)
            .arg("-out")
            .arg(&csr),
    );
    let extensions = dir.join("server.ext");
    std::fs::write(&extensions, SERVER_EXTENSIONS).unwrap();
    let server_cert = dir.join("server.pem");
    run_checked(
        "openssl x509 -req (server)",
        Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .args(["-set_serial", "2", "-days", "2", "-extfile"])
            .arg(&extensions)
            .arg("-out")
            .arg(&server_cert),
    );
    // The chain is right before Terraform sees it, so a failure below is Terraform's verdict.
    run_checked(
        "openssl verify",
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca)
            .arg(&server_cert),
    );
    Pki {
        ca,
        other_ca,
        server_cert,
        server_key,
    }
}

/// The HTTPS server (fixtures/network_mirror/serve_https.py), stopped when dropped: killed
/// and reaped, also while a failed test unwinds. Should the test process die without
/// unwinding, the server exits by itself when its stdin (a pipe from this process) closes.
struct HttpsServer {
    child: Child,
    port: u16,
    log: PathBuf,
    stderr: PathBuf,
}

impl HttpsServer {
    fn start(root: &Path, cert: &Path, key: &Path, scratch: &Path) -> HttpsServer {
        let script =
            workspace_root().join("terraform-tests/fixtures/network_mirror/serve_https.py");
        let log = scratch.join("server-requests.log");
        let stderr = scratch.join("server-stderr.log");
        let mut child = spawn(
            Command::new("python3")
                .arg(&script)
                .arg(root)
                .arg(cert)
                .arg(key)
                .arg(&log)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&stderr).unwrap()),
        )
        .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        // It prints its port first; the reader then drains stdout until the server exits.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        let mut server = HttpsServer {
            child,
            port: 0,
            log,
            stderr,
        };
        let first = rx.recv_timeout(SERVER_WAIT);
        server.port = match first {
            Ok(Some(Ok(line))) => line.trim().parse().unwrap_or_else(|_| {
                panic!(
                    "the server printed {line:?}, not a port: {}",
                    server.errors()
                )
            }),
            other => panic!(
                "the server did not print its port ({other:?}): {}",
                server.errors()
            ),
        };
        server
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    /// Every line of the request log so far: "METHOD PATH STATUS" or "TLS-ERROR reason".
    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The log lines written after the first `mark` lines.
    fn log_since(&self, mark: usize) -> Vec<String> {
        self.log_lines().into_iter().skip(mark).collect()
    }

    /// What the server wrote on stderr, for failure messages.
    fn errors(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lays out under `ROOT/registry/` the answers of the Provider Registry Protocol for our one
/// release, as static files: `v1/providers/autoheal/autoheal/versions`, the download
/// metadata for linux_amd64 and, under `files/`, the zip, the release's SHA256SUMS and its
/// signature by `gpg`'s key `key`.
fn publish_registry(
    root: &Path,
    server: &HttpsServer,
    release: &Artifacts,
    gpg: &GnupgHome,
    key: &str,
) {
    let base = root.join("registry");
    let provider = base.join("v1/providers/autoheal/autoheal");
    let download = provider.join(format!("{VERSION}/download/linux"));
    let files = base.join("files");
    for dir in [&download, &files] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy(&release.zip, files.join(zip_name())).unwrap();
    std::fs::copy(&release.sums, files.join(sums_name())).unwrap();
    let signature_name = format!("{}.sig", sums_name());
    gpg.detach_sign(&files.join(sums_name()), &files.join(&signature_name));

    // The plugin protocols come from the release's manifest, as the registry takes them.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&release.manifest).unwrap()).unwrap();
    let protocols = manifest["metadata"]["protocol_versions"].clone();
    assert!(protocols.is_array(), "manifest: {manifest}");
    let versions = serde_json::json!({"versions": [{
        "version": VERSION,
        "protocols": protocols,
        "platforms": [{"os": "linux", "arch": "amd64"}],
    }]});
    std::fs::write(provider.join("versions"), versions.to_string()).unwrap();
    let file_url = |name: &str| server.url(&format!("registry/files/{name}"));
    let meta = serde_json::json!({
        "protocols": protocols,
        "os": "linux",
        "arch": "amd64",
        "filename": zip_name(),
        "download_url": file_url(&zip_name()),
        "shasums_url": file_url(&sums_name()),
        "shasums_signature_url": file_url(&signature_name),
        "shasum": sha256_hex(&release.zip),
        "signing_keys": {"gpg_public_keys": [{
            "key_id": gpg.key_id(key),
            "ascii_armor": gpg.armored_public_key(key),
        }]},
    });
    std::fs::write(download.join("amd64"), meta.to_string()).unwrap();
}

/// A Terraform in a fresh copy of `config` with `cli_config` as its only CLI config and
/// `ca_file` as the TLS roots it trusts.
fn terraform_in(
    tf: &TerraformBinary,
    config: &Path,
    cli_config: &Path,
    ca_file: &Path,
    counter: &ConnectionCounter,
) -> Terraform {
    let options = tf
        .options(config)
        .with_envs(counter.aws_env())
        .with_env("TF_CLI_CONFIG_FILE", cli_config.to_str().unwrap())
        .with_env("SSL_CERT_FILE", ca_file.to_str().unwrap())
        // A plugin cache from the caller's environment would be a second source.
        .with_env("TF_PLUGIN_CACHE_DIR", "");
    let mut terraform = Terraform::new(options).unwrap();
    terraform.set_timeout(TERRAFORM_TIMEOUT);
    terraform
}

/// A CLI config whose only installation method is the network mirror at `url`.
fn write_mirror_cli_config(path: &Path, url: &str) {
    std::fs::write(
        path,
        format!("provider_installation {{\n  network_mirror {{\n    url = \"{url}\"\n  }}\n}}\n"),
    )
    .unwrap();
}

/// `terraform init` whatever its exit code (the refusals below must fail).
fn init(terraform: &Terraform) -> CommandOutput {
    terraform
        .run(&["init", "-no-color", "-input=false"], false)
        .unwrap()
}

/// Whether init left our provider in the working directory's `.terraform/providers`.
fn provider_installed(terraform: &Terraform) -> bool {
    terraform
        .working_dir()
        .join(".terraform/providers")
        .join(PROVIDER_ADDRESS)
        .exists()
}

/// The hashes of the lock file's one provider block.
fn lock_hashes(terraform: &Terraform) -> Vec<String> {
    let lock = std::fs::read_to_string(terraform.working_dir().join(".terraform.lock.hcl"))
        .unwrap_or_else(|e| panic!("no lock file: {e}"));
    assert!(
        lock.contains(&format!("provider \"{PROVIDER_ADDRESS}\"")),
        "{lock}"
    );
    lock.split('"')
        .filter(|s| s.starts_with("h1:") || s.starts_with("zh:"))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until the log has a line after `mark` that satisfies `wanted`: the server
/// records a refused handshake when the client's alert arrives, which may be just after the
/// client has exited.
fn wait_for_log_line(
    server: &HttpsServer,
    mark: usize,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + SERVER_WAIT;
    loop {
        let lines = server.log_since(mark);
        if lines.iter().any(|l| wanted(l)) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files in a flat directory, by name.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How long each step took for one Terraform, for the summary at the end.
struct Timings {
    name: String,
    steps: Vec<(&'static str, Duration)>,
}

#[test]
fn terraform_installs_the_release_from_an_https_network_mirror_made_by_providers_mirror() {
    let started = Instant::now();
    let versions = terraform_versions();
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    let release = release_into(&scratch.join("release"));
    let zip_sha256 = sha256_hex(&release.zip);
    let expected_h1 = h1_of_zip(&release.zip);

    let pki = make_pki(&scratch.join("pki"));
    let docroot = scratch.join("docroot");
    std::fs::create_dir_all(&docroot).unwrap();
    let server = HttpsServer::start(&docroot, &pki.server_cert, &pki.server_key, scratch);
    // The registry's publisher key.
    let gpg = GnupgHome::create();
    let key = gpg.generate_key(
        "autoheal network mirror test <registry@autoheal.invalid>",
        "rsa2048",
        "1d",
    );
    publish_registry(&docroot, &server, &release, &gpg, &key);
    let setup_time = started.elapsed();

    // `terraform providers mirror`, with every Terraform, each into its own mirror, reading
    // the stand-in registry (see the module doc) over the same TLS setup the clients use.
    let registry_cli_config = scratch.join("registry.tfrc");
    std::fs::write(
        &registry_cli_config,
        format!(
            "host \"registry.terraform.io\" {{\n  services = {{\n    \"providers.v1\" = \"{}\"\n  }}\n}}\n",
            server.url("registry/v1/providers/")
        ),
    )
    .unwrap();
    let no_aws = ConnectionCounter::start().unwrap();
    let config = write_pinned_config(&scratch.join("config"), &no_aws, "mirror-check");
    let provider_dir = |mirror: &Path| mirror.join(PROVIDER_ADDRESS);
    let mut mirrors = Vec::new();
    for tf in &versions {
        let dir_name = format!("mirror-by-{}", tf.name.replace(' ', "-").to_lowercase());
        let mirror = docroot.join(&dir_name);
        let mark = server.log_lines().len();
        let terraform = terraform_in(tf, &config, &registry_cli_config, &pki.ca, &no_aws);
        let out = terraform
            .run(
                &[
                    "providers",
                    "mirror",
                    "-no-color",
                    "-platform=linux_amd64",
                    mirror.to_str().unwrap(),
                ],
                false,
            )
            .unwrap();
        assert!(
            out.exit_code == 0 && out.stdout.contains("Package authenticated"),
            "{}: providers mirror should download and authenticate the release: {out}\n\
             server: {:?}\n{}",
            tf.name,
            server.log_since(mark),
            server.errors()
        );
        // It fetched the zip, the sums and their signature from the stand-in registry.
        let served = server.log_since(mark);
        for file in [zip_name(), sums_name(), format!("{}.sig", sums_name())] {
            let line = format!("GET /registry/files/{file} 200");
            assert!(
                served.contains(&line),
                "{}: no {line:?} in {served:?}",
                tf.name
            );
        }

        // The layout of the Provider Network Mirror Protocol, and nothing else (no staging
        // file left behind).
        let dir = provider_dir(&mirror);
        assert_eq!(
            file_names(&dir),
            [
                format!("{VERSION}.json"),
                "index.json".to_string(),
                zip_name()
            ],
            "{}: the mirror's files",
            tf.name
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index,
            serde_json::json!({"versions": {VERSION: {}}}),
            "{}: index.json",
            tf.name
        );
        let version_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{VERSION}.json"))).unwrap())
                .unwrap();
        assert_eq!(
            version_json,
            serde_json::json!({"archives": {PLATFORM: {
                "url": zip_name(),
                "hashes": [expected_h1],
            }}}),
            "{}: {VERSION}.json should point at the zip with the h1 of its content",
            tf.name
        );
        assert!(
            std::fs::read(dir.join(zip_name())).unwrap() == std::fs::read(&release.zip).unwrap(),
            "{}: the mirrored zip should be the released zip, byte for byte",
            tf.name
        );
        mirrors.push(dir_name);
    }

    // A copy of the first mirror whose zip changed after `providers mirror` hashed it.
    let tampered = docroot.join("tampered");
    std::fs::create_dir_all(provider_dir(&tampered)).unwrap();
    for name in file_names(&provider_dir(&docroot.join(&mirrors[0]))) {
        std::fs::copy(
            provider_dir(&docroot.join(&mirrors[0])).join(&name),
            provider_dir(&tampered).join(&name),
        )
        .unwrap();
    }
    change_one_byte_inside(&provider_dir(&tampered).join(zip_name()));
    assert_ne!(
        sha256_hex(&provider_dir(&tampered).join(zip_name())),
        zip_sha256,
        "the tampered zip must differ from the release"
    );

    let mut timings = Vec::new();
    for (i, tf) in versions.iter().enumerate() {
        // Each Terraform installs from the mirror made by the other one when there are two:
        // a company's clients rarely run the Terraform that made its mirror.
        let mirror = &mirrors[(i + 1) % mirrors.len()];
        let slug = tf.name.replace(' ', "-").to_lowercase();
        let mut steps = Vec::new();
        eprintln!("=== {}: installing from {mirror} over HTTPS", tf.name);

        // 1. Trusting the company's CA: init installs the release and the plan uses it.
        let cli_config = scratch.join(format!("{slug}-mirror.tfrc"));
        write_mirror_cli_config(&cli_config, &server.url(&format!("{mirror}/")));
        let counter = ConnectionCounter::start().unwrap();
        let config = write_pinned_config(
            &scratch.join(format!("{slug}-config")),
            &counter,
            "mirror-check",
        );
        let terraform = terraform_in(tf, &config, &cli_config, &pki.ca, &counter);
        let mark = server.log_lines().len();
        let out = init(&terraform);
        steps.push(("init", out.duration));
        let installed = format!("Installed {PROVIDER_SOURCE} v{VERSION} (verified checksum)");
        assert!(
            out.exit_code == 0 && out.stdout.contains(&installed),
            "{}: init should report {installed:?}, the mirror's hash checked: {out}\n\
             server: {:?}\n{}",
            tf.name,
            server.log_since(mark),
            server.errors()
        );
        // The server answered the protocol's requests, all of them under this mirror (not
        // from the stand-in registry: this CLI config does not know it).
        let served = server.log_since(mark);
        let prefix = format!("/{mirror}/{PROVIDER_ADDRESS}");
        for file in [
            "index.json".to_string(),
            format!("{VERSION}.json"),
            zip_name(),
        ] {
            let line = format!("GET {prefix}/{file} 200");
            assert!(
                served.contains(&line),
                "{}: no {line:?} in {served:?}",
                tf.name
            );
        }
        assert!(
            served
                .iter()
                .all(|l| l.starts_with(&format!("GET {prefix}/"))
                    || l.starts_with(&format!("HEAD {prefix}/"))),
            "{}: init should have requested only the mirror's files: {served:?}",
            tf.name
        );
        let hashes = lock_hashes(&terraform);
        eprintln!("{}: lock file hashes {hashes:?}", tf.name);
        assert!(
            hashes.contains(&expected_h1),
            "{}: the lock file should record the released package's {expected_h1}: {hashes:?}",
            tf.name
        );
        for hash in &hashes {
            assert!(
                *hash == expected_h1 || *hash == format!("zh:{zip_sha256}"),
                "{}: the lock file records {hash}, which is neither the package's h1 nor the \
                 zip's zh:{zip_sha256}",
                tf.name
            );
        }
        let plan = terraform
            .plan()
            .unwrap_or_else(|e| panic!("{}: plan failed: {e:#}", tf.name));
        steps.push(("plan", plan.duration));
        assert!(
            plan.plans_only_the_creation_of("autoheal_instance.app"),
            "{}: the installed provider should plan the instance:\n{plan}",
            tf.name
        );
        assert_eq!(
            counter.connections(),
            0,
            "{}: init and plan need no AWS call, but these were made: {:?}",
            tf.name,
            counter.requests()
        );

        // 2. The same mirror and server, trusting another CA: refused at the handshake, so
        // nothing is served and nothing installed.
        let terraform = terraform_in(tf, &config, &cli_config, &pki.other_ca, &counter);
        let mark = server.log_lines().len();
        let out = init(&terraform);
        steps.push(("init, other CA", out.duration));
        assert!(
            out.exit_code != 0
                && out
                    .words()
                    .contains("x509: certificate signed by unknown authority")
                && !provider_installed(&terraform),
            "{}: init trusting another CA should fail on the certificate: {out}",
            tf.name
        );
        let served = wait_for_log_line(&server, mark, |l| l.starts_with("TLS-ERROR"));
        assert!(
            !served.is_empty() && served.iter().all(|l| l.starts_with("TLS-ERROR")),
            "{}: the server should have seen only refused handshakes: {served:?}\n{}",
            tf.name,
            server.errors()
        );

        // 3. The company's CA again, but the mirror whose zip changed: Terraform downloads
        // the zip, then refuses it against the h1 hash in VERSION.json.
        let tampered_config = scratch.join(format!("{slug}-tampered.tfrc"));
        write_mirror_cli_config(&tampered_config, &server.url("tampered/"));
        let terraform = terraform_in(tf, &config, &tampered_config, &pki.ca, &counter);
        let mark = server.log_lines().len();
        let out = init(&terraform);
        steps.push(("init, changed zip", out.duration));
        let mismatch =
            format!("provider package doesn't match the expected checksum \"{expected_h1}\"");
        assert!(
            out.exit_code != 0
                && out.words().contains(&mismatch)
                && !provider_installed(&terraform),
            "{}: init from the changed zip should fail with {mismatch:?}: {out}",
            tf.name
        );
        let line = format!("GET /tampered/{PROVIDER_ADDRESS}/{} 200", zip_name());
        let served = server.log_since(mark);
        assert!(
            served.contains(&line),
            "{}: the changed zip should have been downloaded ({line:?}): {served:?}",
            tf.name
        );
        assert_eq!(counter.connections(), 0, "{}: AWS calls", tf.name);
        timings.push(Timings {
            name: tf.name.clone(),
            steps,
        });
    }

    drop(server);
    eprintln!(
        "network mirror: setup (release, certificates, key, server) {:.1}s",
        setup_time.as_secs_f64()
    );
    for t in &timings {
        let steps: Vec<String> = t
            .steps
            .iter()
            .map(|(what, d)| format!("{what} {:.1}s", d.as_secs_f64()))
            .collect();
        eprintln!("network mirror: {}: {}", t.name, steps.join(", "));
    }
    eprintln!(
        "network mirror: whole test {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
