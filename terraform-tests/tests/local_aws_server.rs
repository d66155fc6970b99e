//! The local AWS server's life: one per test (own port, own state), the control API's basics,
//! stopping, the message when the venv is missing, and the `local-aws` CLI of the demo.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terraform_tests::local_aws::{venv_python_in, Control, LocalAws, Options};

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

fn refused(endpoint: &str) -> bool {
    TcpStream::connect(("127.0.0.1", port_of(endpoint))).is_err()
}

#[tokio::test]
async fn each_server_has_its_own_port_and_state_and_stops_cleanly() {
    let a = LocalAws::start().unwrap();
    let b = LocalAws::start_with(Options {
        clock_scale: 0.5,
        ..Options::default()
    })
    .unwrap();
    assert_ne!(a.endpoint(), b.endpoint());
    assert!(a.endpoint().starts_with("http://127.0.0.1:"));

    let health = a.control().health().await.unwrap();
    assert!(health.ok);
    assert_eq!(health.clock_scale, 0.01);
    assert_eq!(health.region, a.region());
    assert_eq!(health.port, port_of(a.endpoint()));
    assert_eq!(b.control().health().await.unwrap().clock_scale, 0.5);

    let (ca, cb) = (a.clients().await, b.clients().await);
    let vpc = ca
        .ec2
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let in_b = cb.ec2.describe_vpcs().send().await.unwrap();
    assert!(in_b.vpcs().iter().all(|v| v.vpc_id() != Some(vpc.as_str())));

    // Clock and reset.
    assert_eq!(a.control().set_clock_scale(0.02).await.unwrap(), 0.02);
    assert_eq!(a.control().clock().await.unwrap().scale, 0.02);
    a.control().reset().await.unwrap();
    let after = ca.ec2.describe_vpcs().send().await.unwrap();
    assert!(after
        .vpcs()
        .iter()
        .all(|v| v.vpc_id() != Some(vpc.as_str())));
    assert!(a.control().calls().await.unwrap().len() <= 1);

    // A bad control request is an error with the server's message.
    let e = Control::new(a.endpoint())
        .set_clock_scale(-1.0)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("HTTP 400"), "{e:#}");

    let endpoint_a = a.endpoint().to_string();
    let started = Instant::now();
    let status = a.stop().unwrap();
    assert!(status.success(), "SIGTERM ends it cleanly: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(refused(&endpoint_a));

    let endpoint_b = b.endpoint().to_string();
    drop(b);
    assert!(refused(&endpoint_b));
}

#[test]
fn a_missing_venv_says_to_run_install_tools() {
    let dir = tempfile::tempdir().unwrap();
    let e = venv_python_in(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tools/install-tools"), "{e}");

    // A venv without moto.
    std::fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
    std::fs::write(dir.path().join("venv/bin/python"), "").unwrap();
    let e = venv_python_in(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("moto") && e.contains("tools/install-tools"),
        "{e}"
    );
}

#[tokio::test]
async fn the_cli_prints_the_endpoint_and_stops_the_server_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-aws"))
        .args(["--clock-scale", "0.25"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let endpoint = first
        .strip_prefix("endpoint=")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert_eq!(second, format!("export AWS_ENDPOINT_URL={endpoint}"));

    let health = Control::new(&endpoint).health().await.unwrap();
    assert_eq!(health.clock_scale, 0.25);

    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "local-aws did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(refused(&endpoint), "the server stopped with the CLI");
}
