//! `tether relay` as a process: starts on port 0, prints its one line, serves a `HELLO`,
//! and shuts down gracefully on SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;
use std::time::Duration;

use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::{CloseCode, RelayFrame, Role};
use tether_relay::client;
use tether_testkit::cli::{Relay, Tether};

const WAIT: Duration = Duration::from_secs(10);

const TETHER: Tether = Tether::new(env!("CARGO_BIN_EXE_tether"));

fn tether() -> Command {
    TETHER.command()
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
    let mut c = TETHER.relay_command("127.0.0.1:0", &[("acme", "acme credential 0123")]);
    c.env("RUST_LOG", "warn");
    let mut relay = Relay::start(c);
    let url = relay.url.clone();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(!relay.addr.ends_with(":0"), "{url}");

    let runtime = tether_testkit::inproc::runtime();
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

        relay.proc.signal("TERM");
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

    let status = relay
        .proc
        .wait_exit(WAIT)
        .expect("relay did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
}
