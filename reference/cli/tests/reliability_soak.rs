//! The short soak CI runs (RELIABILITY.md): `tether loadtest` drives 100 sessions through
//! a real `tether relay` for 5 s and checks every message end to end. The full run is
//! 1,000 sessions for 60 s with a release build (the command is in RELIABILITY.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod reliability_util;
mod support;

use std::thread;
use std::time::Duration;

use reliability_util::*;
use serde_json::Value;

fn summary(out: &Output) -> Value {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary: {out:?}"));
    serde_json::from_str(line).unwrap()
}

/// LINK-18, LINK-26: 100 sessions, random sizes both ways, 5 s: nothing lost, corrupted,
/// misrouted or reordered; the relay's peak memory is reported.
#[test]
fn short_soak_loses_nothing() {
    let mut c = tether();
    c.args([
        "loadtest",
        "--sessions",
        "100",
        "--duration",
        "5",
        "--min-size",
        "24",
        "--max-size",
        "16384",
        "--json",
    ]);
    let out = run(c, Duration::from_secs(90));
    let s = summary(&out);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["sessionsOpened"], 100, "{s}");
    for field in [
        "lost",
        "corrupted",
        "misrouted",
        "reordered",
        "sessionsClosed",
        "linkFailures",
    ] {
        assert_eq!(s[field], 0, "{field}: {s}");
    }
    let sent = s["messagesSent"].as_u64().unwrap();
    assert!(sent >= 1000, "{s}");
    assert_eq!(s["delivered"].as_u64().unwrap(), sent, "{s}");
    assert_eq!(s["bytes"], s["bytesSent"], "{s}");
    assert!(s["relayPeakRssKiB"].as_u64().unwrap() > 0, "{s}");
    figure("short soak (100 sessions, 5 s, debug build)", &s);
}

/// The checker fails loudly: with the relay killed half way, the run reports what did not
/// arrive and exits 1.
#[test]
fn soak_reports_failure_when_the_relay_dies() {
    let mut relay = start_relay("127.0.0.1:0", &[]);
    let mut c = tether();
    c.args(["loadtest", "--relay", &relay.url])
        .args(["--workspace", &format!("acme={CRED}")])
        .args([
            "--sessions",
            "20",
            "--duration",
            "4",
            "--drain",
            "2",
            "--json",
        ]);
    let mut child = Proc::piped(c);
    thread::sleep(Duration::from_secs(2));
    relay.proc.kill();
    let status = child
        .wait_exit(Duration::from_secs(60))
        .expect("loadtest ended");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}");
    let s: Value = serde_json::from_str(stdout.lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(s["ok"], false, "{s}");
    assert!(
        s["linkFailures"].as_u64().unwrap() > 0 || s["lost"].as_u64().unwrap() > 0,
        "{s}"
    );
}
