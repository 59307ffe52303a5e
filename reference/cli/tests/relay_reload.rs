//! `tether relay --config FILE` reconfigured while it runs (`LINK-37`): the file is
//! rewritten and the relay sent SIGHUP. A file that does not parse changes nothing; a
//! changed credential ends the workspace's open links with `GOAWAY AUTH_FAILED`, remote
//! access switched off with `GOAWAY REMOTE_ACCESS_DISABLED`; other workspaces' links, and
//! workspaces given with `--workspace`, are untouched. Every wait is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::{LIMIT, Relay, TempDir, tether};
use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::{CloseCode, RelayFrame, Role};
use tether_relay::client::{self, ClientLink};

/// How long a frame may take to arrive (generous: the machine may be loaded).
const WAIT: Duration = Duration::from_secs(10);

const ACME: &str = "acme-credential-0123456789";
const ACME_NEW: &str = "acme-credential-rotated-9876";
const BETA: &str = "beta-credential-0123456789";
const FLAG: &str = "flag-credential-0123456789";

fn config(acme: &str, beta_remote_access: bool) -> String {
    format!(
        "[[workspace]]\nid = \"acme\"\ncredential = \"{acme}\"\n\n\
         [[workspace]]\nid = \"beta\"\ncredential = \"{BETA}\"\n\
         remote_access = {beta_remote_access}\n"
    )
}

/// Waits for a log line containing `needle` (lines are read by a thread).
fn wait_for_log(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no log line with {needle:?} within {WAIT:?}; log:\n{seen:#?}"),
        }
    }
}

async fn hello(url: &str, workspace: &str, credential: &str) -> (ClientLink, RelayFrame) {
    let mut link = tokio::time::timeout(WAIT, client::connect(url, None))
        .await
        .unwrap()
        .unwrap();
    let frame = RelayFrame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Controller,
        workspace: workspace.into(),
        credential: credential.as_bytes().to_vec(),
        registration: Vec::new(),
    };
    client::send_frame(&mut link, &frame).await.unwrap();
    let answer = next(&mut link).await;
    (link, answer)
}

async fn next(link: &mut ClientLink) -> RelayFrame {
    tokio::time::timeout(WAIT, client::recv_frame(link))
        .await
        .expect("no frame in time")
        .unwrap()
        .expect("the link ended without a frame")
}

async fn ready(url: &str, workspace: &str, credential: &str) -> ClientLink {
    let (link, answer) = hello(url, workspace, credential).await;
    assert_eq!(answer, RelayFrame::Ready, "{workspace}");
    link
}

/// The link is up: a PING gets its PONG, with nothing before it.
async fn alive(link: &mut ClientLink, value: u64) {
    client::send_frame(link, &RelayFrame::Ping { value })
        .await
        .unwrap();
    assert_eq!(next(link).await, RelayFrame::Pong { value });
}

async fn goaway(link: &mut ClientLink, code: CloseCode) {
    match next(link).await {
        RelayFrame::GoAway { code: got, .. } => assert_eq!(got, code),
        other => panic!("expected GOAWAY {code}, got {other:?}"),
    }
    // LINK-27: the relay closes after its GOAWAY.
    let end = tokio::time::timeout(WAIT, client::recv_frame(link))
        .await
        .expect("the link stayed open after GOAWAY");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[test]
fn sighup_applies_the_rewritten_config_to_open_links() {
    let dir = TempDir::new("relay-reload");
    let file = dir.join("relay.toml");
    std::fs::write(&file, config(ACME, true)).unwrap();
    let mut c = tether();
    c.args(["relay", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .args(["--workspace", &format!("flag={FLAG}")])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut relay = Relay::start(c);
    let stderr = relay.proc.0.stderr.take().unwrap();
    let url = relay.url.clone();
    let (log_tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if log_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();

    let runtime = tether_testkit::inproc::runtime();
    runtime.block_on(async {
        let mut acme = ready(&url, "acme", ACME).await;
        let mut beta = ready(&url, "beta", BETA).await;
        let mut flag = ready(&url, "flag", FLAG).await;

        // Bad input: reported, and the running configuration kept.
        std::fs::write(&file, "[[workspace]]\nid = \"acme\"\ncredential = \n").unwrap();
        relay.proc.signal("HUP");
        wait_for_log(&log, "reload refused", &mut seen);
        alive(&mut acme, 1).await;
        alive(&mut beta, 2).await;
        drop(ready(&url, "acme", ACME).await);

        // acme's credential rotated, beta switched off.
        std::fs::write(&file, config(ACME_NEW, false)).unwrap();
        relay.proc.signal("HUP");
        goaway(&mut acme, CloseCode::AUTH_FAILED).await;
        goaway(&mut beta, CloseCode::REMOTE_ACCESS_DISABLED).await;
        wait_for_log(&log, "credential changed", &mut seen);
        wait_for_log(&log, "remote access switched off", &mut seen);
        // The workspace of --workspace stays as given.
        alive(&mut flag, 3).await;
        let (_, answer) = hello(&url, "acme", ACME).await;
        assert!(
            matches!(answer, RelayFrame::GoAway { code, .. } if code == CloseCode::AUTH_FAILED),
            "{answer:?}"
        );
        let (_, answer) = hello(&url, "beta", BETA).await;
        assert!(
            matches!(answer, RelayFrame::GoAway { code, .. } if code == CloseCode::REMOTE_ACCESS_DISABLED),
            "{answer:?}"
        );
        let mut acme = ready(&url, "acme", ACME_NEW).await;

        // beta removed from the file: gone; acme, unchanged, keeps its link.
        std::fs::write(
            &file,
            format!("[[workspace]]\nid = \"acme\"\ncredential = \"{ACME_NEW}\"\n"),
        )
        .unwrap();
        relay.proc.signal("HUP");
        wait_for_log(&log, "removed", &mut seen);
        alive(&mut acme, 4).await;
        alive(&mut flag, 5).await;
        let (_, answer) = hello(&url, "beta", BETA).await;
        assert!(
            matches!(answer, RelayFrame::GoAway { code, .. } if code == CloseCode::AUTH_FAILED),
            "{answer:?}"
        );
    });
    drop(relay);
}

#[test]
fn relay_help_documents_the_reload() {
    let out = support::run(
        {
            let mut c = tether();
            c.args(["relay", "--help"]);
            c
        },
        LIMIT,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    for needle in [
        "SIGHUP",
        "LINK-37",
        "AUTH_FAILED",
        "REMOTE_ACCESS_DISABLED",
        "kept",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle} missing from:\n{}",
            out.stdout
        );
    }
}
