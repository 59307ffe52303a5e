//! `tether relay` as a process: starts on port 0, prints its one line, serves a `HELLO`,
//! and shuts down gracefully on SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::{CloseCode, RelayFrame, Role};
use tether_relay::client;

const WAIT: Duration = Duration::from_secs(10);

/// Kills the process if the test ends early.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tether() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tether"))
}

#[test]
fn relay_help_answers() {
    let out = tether().args(["relay", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--config",
        "--workspace",
        "--tls-cert",
        "--tls-key",
        "--insecure",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn relay_refuses_plain_ws_on_a_non_loopback_address() {
    // LINK-2: refused before binding.
    let out = tether()
        .args([
            "relay",
            "--listen",
            "0.0.0.0:0",
            "--workspace",
            "acme=acme credential 0123",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("LINK-2"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn relay_starts_serves_a_hello_and_stops_on_sigterm() {
    let child = tether()
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--workspace",
            "acme=acme credential 0123",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut process = Process(child);
    let stdout = process.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(WAIT).expect("no listening line").unwrap();
    let url = line
        .strip_prefix("tether relay listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "{url}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut link = tokio::time::timeout(WAIT, client::connect(&url, None))
            .await
            .unwrap()
            .unwrap();
        let hello = RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Controller,
            workspace: "acme".into(),
            credential: b"acme credential 0123".to_vec(),
            registration: Vec::new(),
        };
        client::send_frame(&mut link, &hello).await.unwrap();
        let ready = tokio::time::timeout(WAIT, client::recv_frame(&mut link))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ready, Some(RelayFrame::Ready));

        let status = Command::new("kill")
            .args(["-TERM", &process.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let goaway = tokio::time::timeout(WAIT, client::recv_frame(&mut link))
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                goaway,
                Some(RelayFrame::GoAway {
                    code: CloseCode::GOING_AWAY,
                    ..
                })
            ),
            "{goaway:?}"
        );
    });

    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "relay did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
