//! Reliability under faults (RELIABILITY.md): the relay killed mid-stream, the host killed
//! at every step of every state write of pairing, and a full disk. Real `tether`
//! processes over 127.0.0.1; every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod reliability_util;
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reliability_util::*;
use tether_host::state::fault::{self, CRASH_POINTS};
use tether_host::state::{DiskHostStore, HostState, RunInfo, StateDir};
use tether_proto::channel::Timestamp;
use tether_proto::session::HostStore;
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

/// Whether a crash at `point` comes after the new file is in place.
fn durable(point: &str) -> bool {
    point == fault::AFTER_RENAME || point == fault::AFTER_DIR_FSYNC
}

fn load(dir: &Path) -> HostState {
    StateDir::open(dir)
        .unwrap()
        .read()
        .unwrap_or_else(|e| panic!("the store must load after a crash: {e}"))
}

fn temporaries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

fn killed(status: std::process::ExitStatus) -> bool {
    status.signal() == Some(9)
}

/// A host state directory with a key and run.json, as `tether host run` leaves it.
fn prepared_state(dir: &Path, relay_url: &str) -> StateDir {
    let state = StateDir::open(dir).unwrap();
    state.load_or_create_key().unwrap();
    state
        .write_run_info(&RunInfo {
            version: 1,
            relay: relay_url.to_owned(),
            workspace: "acme".into(),
            host_name: "build-box".into(),
        })
        .unwrap();
    state
}

/// The host is killed while minting a token (`tether host pair`), at every point of its
/// write of host.json: the store always loads, holds the token exactly when the crash came
/// after the rename, and keeps working.
#[test]
fn kill_while_minting_a_token() {
    for point in CRASH_POINTS {
        let dir = TempDir::new("mint");
        let state = prepared_state(&dir.0, "ws://127.0.0.1:9/");
        let mut c = tether();
        c.env("TETHER_FAULT", format!("{point}:host.json:1"))
            .args(["host", "pair", "--state"])
            .arg(&dir.0);
        let out = run(c, LIMIT);
        assert!(killed(out.status), "{point}: {out:?}");
        assert!(
            !out.stdout.contains("TETHER:"),
            "{point}: no token was shown"
        );
        let s = load(&dir.0);
        assert_eq!(s.tokens.len(), usize::from(durable(point)), "{point}");
        // The store keeps working, and cleans what the crash left.
        let token = state
            .mint_token(Duration::from_secs(60), UnixTime::now())
            .unwrap();
        assert_eq!(load(&dir.0).tokens.len(), 1 + usize::from(durable(point)));
        assert_eq!(temporaries(&dir.0), 0, "{point}: temporaries swept");
        let mut store = DiskHostStore::new(state);
        store
            .redeem_token(token.token_id(), token.token_secret(), UnixTime::now())
            .unwrap();
    }
}

/// Pairing through a real relay with the host killed at `point` of its `nth` write of
/// host.json (1: redeeming the token, 2: recording the device). Returns the state after the
/// crash.
fn pair_with_crash(relay: &Relay, point: &str, nth: u32) -> (TempDir, String, HostState) {
    let hs = TempDir::new("host");
    prepared_state(&hs.0, &relay.url);
    let token = mint_token(&hs.0, 300);
    let mut host = start_host(&hs.0, &relay.url, Some(&format!("{point}:host.json:{nth}")));
    let ctl = TempDir::new("ctl");
    let out = pair_when_up(&ctl.0, &token);
    assert_ne!(
        out.code(),
        Some(0),
        "{point}/{nth}: pairing cannot succeed: {out:?}"
    );
    let status = host
        .wait_exit(LIMIT)
        .unwrap_or_else(|| panic!("{point}/{nth}: the host did not crash"));
    assert!(killed(status), "{point}/{nth}: {status:?}");
    // CHAN-22: the controller stored nothing for the failed pairing.
    let mut c = tether();
    c.args(["status", "--state"]).arg(&ctl.0);
    let st = run(c, LIMIT);
    assert!(
        st.stdout.contains("no paired hosts"),
        "{point}/{nth}: {st:?}"
    );
    let s = load(&hs.0);
    (hs, token, s)
}

/// After a crash: a consumed token is refused, an unconsumed one pairs exactly once.
fn token_is_never_both_consumed_and_usable(relay: &Relay, hs: &Path, token: &str, consumed: bool) {
    let _host = start_host(hs, &relay.url, None);
    let ctl = TempDir::new("ctl-again");
    let out = pair_when_up(&ctl.0, token);
    if consumed {
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains("TOKEN_REJECTED (34)"), "{out:?}");
    } else {
        assert_eq!(out.code(), Some(0), "{out:?}");
        let ctl2 = TempDir::new("ctl-twice");
        let again = pair_cmd(&ctl2.0, token);
        assert_eq!(again.code(), Some(1), "{again:?}");
        assert!(again.stderr.contains("TOKEN_REJECTED (34)"), "{again:?}");
    }
}

/// CHAN-12 under crashes: the host killed at every point of the write that consumes the
/// token. The token is consumed exactly when the crash came after the rename; either way
/// it is never both consumed and usable.
#[test]
fn kill_while_redeeming_the_token() {
    let relay = start_relay("127.0.0.1:0", &[]);
    let started = Instant::now();
    for point in CRASH_POINTS {
        let (hs, token, s) = pair_with_crash(&relay, point, 1);
        let id = *PairingToken::from_text(&token).unwrap().token_id();
        let record = s.tokens.iter().find(|t| t.id == id).unwrap();
        assert_eq!(record.consumed, durable(point), "{point}");
        assert!(s.devices.is_empty(), "{point}");
        token_is_never_both_consumed_and_usable(&relay, &hs.0, &token, record.consumed);
    }
    figure(
        "kill points while redeeming (6 points)",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
}

/// CHAN-27 under crashes: the host killed at every point of the write that records the
/// device. The token is already consumed (its write completed), so it is refused; the
/// device is recorded exactly when the crash came after the rename.
#[test]
fn kill_while_recording_the_device() {
    let relay = start_relay("127.0.0.1:0", &[]);
    for point in CRASH_POINTS {
        let (hs, token, s) = pair_with_crash(&relay, point, 2);
        let id = *PairingToken::from_text(&token).unwrap().token_id();
        assert!(
            s.tokens.iter().find(|t| t.id == id).unwrap().consumed,
            "{point}"
        );
        assert_eq!(s.devices.len(), usize::from(durable(point)), "{point}");
        token_is_never_both_consumed_and_usable(&relay, &hs.0, &token, true);
    }
}

fn state_with_device(dir: &Path) -> (StateDir, Vec<u8>) {
    let state = prepared_state(dir, "ws://127.0.0.1:9/");
    let mut store = DiskHostStore::new(state.clone());
    let now = UnixTime::now();
    store
        .record_device(&[7u8; 32], "laptop", Timestamp::from_unix(now), now)
        .unwrap();
    let bytes = std::fs::read(state.state_path()).unwrap();
    (state, bytes)
}

/// A full disk, simulated at the write (`TETHER_FAULT=enospc`, works everywhere): every
/// state write fails with a clear error, and host.json is left byte for byte as it was,
/// with no temporary file. A running host refuses the pairing with HOST_ERROR and does not
/// consume the token, which pairs once the disk has room again.
#[test]
fn full_disk_simulated_keeps_the_old_state() {
    let dir = TempDir::new("enospc");
    let (state, before) = state_with_device(&dir.0);
    for args in [
        vec!["host", "pair", "--state"],
        vec!["host", "revoke", "laptop", "--state"],
    ] {
        let mut c = tether();
        c.env("TETHER_FAULT", "enospc:host.json")
            .args(&args)
            .arg(&dir.0);
        let out = run(c, LIMIT);
        assert_eq!(out.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("No space left on device"),
            "{args:?}: {out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "one clear line: {out:?}");
        assert_eq!(std::fs::read(state.state_path()).unwrap(), before);
        assert_eq!(temporaries(&dir.0), 0);
    }

    // A running host whose disk fills up before it consumes a token.
    let relay = start_relay("127.0.0.1:0", &[]);
    let hs = TempDir::new("host");
    prepared_state(&hs.0, &relay.url);
    let token = mint_token(&hs.0, 300);
    let before = std::fs::read(hs.join("host.json")).unwrap();
    let mut host = start_host(&hs.0, &relay.url, Some("enospc:host.json"));
    let ctl = TempDir::new("ctl");
    let out = pair_when_up(&ctl.0, &token);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("HOST_ERROR"), "{out:?}");
    assert_eq!(std::fs::read(hs.join("host.json")).unwrap(), before);
    host.kill();
    // Room again: the same token pairs.
    let _host = start_host(&hs.0, &relay.url, None);
    let out = pair_when_up(&ctl.0, &token);
    assert_eq!(out.code(), Some(0), "{out:?}");
}

/// A real full file system: a 256 KiB tmpfs, filled, mounted in a private mount namespace
/// (`unshare -rm`, no root needed where user namespaces are allowed). Skipped, with a
/// message, where that is not possible; the simulated test above covers the same path.
#[test]
fn full_disk_on_a_real_tmpfs() {
    let probe = std::process::Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /tmp && echo ok",
        ])
        .output();
    let usable = probe
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("ok"))
        .unwrap_or(false);
    if !usable {
        eprintln!("skipped: cannot mount a tmpfs in a user namespace here");
        return;
    }
    let src = TempDir::new("src");
    let (_state, before) = state_with_device(&src.0);
    let mnt = TempDir::new("mnt");
    let out_dir = TempDir::new("out");
    let script = r#"
        set -u
        D="$1"; SRC="$2"; T="$3"; O="$4"
        mount -t tmpfs -o size=256k tmpfs "$D" || { echo NOMOUNT; exit 0; }
        cp -a "$SRC"/. "$D"/
        chmod 700 "$D"
        dd if=/dev/zero of="$D/fill" bs=4096 2>/dev/null
        "$T" host pair --state "$D" >"$O/stdout" 2>"$O/stderr"
        echo "EXIT $?"
        cmp -s "$D/host.json" "$SRC/host.json" && echo INTACT
        ls -A "$D" | grep -c '\.tmp$' | sed 's/^/TEMPS /'
        rm -f "$D/fill"
        "$T" host pair --state "$D" >/dev/null 2>&1 && echo RECOVERED
    "#;
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&mnt.0)
        .arg(&src.0)
        .arg(env!("CARGO_BIN_EXE_tether"))
        .arg(&out_dir.0)
        .env_remove("TETHER_FAULT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = std::fs::read_to_string(out_dir.join("stderr")).unwrap_or_default();
    assert!(!text.contains("NOMOUNT"), "{text}");
    assert!(text.contains("EXIT 1"), "{text}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(text.contains("INTACT"), "host.json changed: {text}");
    assert!(text.contains("TEMPS 0"), "{text}");
    assert!(text.contains("RECOVERED"), "{text}");
    assert_eq!(std::fs::read(src.join("host.json")).unwrap(), before);
    figure("full tmpfs: tether host pair", stderr.trim());
}

/// The relay is killed (SIGKILL) while a command streams output through it: the stream
/// that arrived is intact and in order, `tether exec` fails with one clear line, the host
/// registers again with the restarted relay (LINK-28), a library controller waiting with
/// backoff connects, and `tether exec` works again.
#[test]
fn relay_killed_mid_stream_then_everything_reconnects() {
    let mut relay = start_relay("127.0.0.1:0", &[]);
    let hs = TempDir::new("host");
    let ctl = TempDir::new("ctl");
    let _host = start_host(&hs.0, &relay.url, None);
    let token = mint_token(&hs.0, 300);
    let out = pair_when_up(&ctl.0, &token);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(relay.wait_log("host registered", 1, LIMIT));

    let mut c = tether();
    c.args(["exec", "--state"]).arg(&ctl.0).args([
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); sleep 0.01; done",
    ]);
    let mut exec = Proc::piped(c);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = exec.0.stdout.take().unwrap();
    let lines2 = lines.clone();
    thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines2.lock().unwrap().push(l);
        }
    });
    let mut stderr = exec.0.stderr.take().unwrap();
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    eventually(LIMIT, "output streaming", || {
        let n = lines.lock().unwrap().len();
        if n >= 30 {
            Ok(())
        } else {
            Err(format!("{n} lines"))
        }
    });
    let addr = relay.addr.clone();
    relay.proc.kill();
    let killed_at = Instant::now();
    let status = exec
        .wait_exit(LIMIT)
        .expect("exec ended after the relay died");
    let exec_ended = killed_at.elapsed();
    assert_eq!(status.code(), Some(1));
    let err = err.join().unwrap();
    assert!(err.starts_with("tether: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let got = lines.lock().unwrap().clone();
    for (i, l) in got.iter().enumerate() {
        assert_eq!(l, &format!("line{i}"), "output intact and in order");
    }

    // A library controller waiting for the relay with backoff (LINK-28).
    let url = relay.url.clone();
    let waiter = thread::spawn(move || {
        let rt = tether_testkit::inproc::runtime();
        rt.block_on(async {
            let mut backoff =
                tether_controller::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
            let link = tether_controller::connect_with_retry(
                &url,
                "acme",
                CRED,
                &tether_controller::LinkOptions::default(),
                &mut backoff,
                Some(100),
            )
            .await;
            let t = Instant::now();
            let ok = link.is_ok();
            if let Ok(link) = link {
                link.close(tether_proto::link::CloseCode::NORMAL).await;
            }
            (ok, backoff.failures(), t)
        })
    });
    thread::sleep(Duration::from_millis(500));
    let relay2 = eventually(LIMIT, "restart the relay", || {
        std::panic::catch_unwind(|| start_relay(&addr, &[]))
            .map_err(|_| "port not free yet".to_owned())
    });
    let restarted = Instant::now();
    assert!(
        relay2.wait_log("host registered", 1, Duration::from_secs(90)),
        "the host registered again"
    );
    let reregistered = restarted.elapsed();
    let (ok, _failures, connected_at) = waiter.join().unwrap();
    assert!(ok, "the waiting controller connected");
    let controller_back = connected_at.saturating_duration_since(restarted);
    let out = exec_when_up(&ctl.0, &["echo", "again"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "again\n");
    let exec_back = restarted.elapsed();
    figure("lines streamed before the kill", got.len());
    figure(
        "exec failed after relay kill",
        format!("{:.2} s", exec_ended.as_secs_f64()),
    );
    figure(
        "host re-registered after relay restart",
        format!("{:.2} s", reregistered.as_secs_f64()),
    );
    figure(
        "waiting controller link READY after restart",
        format!("{:.2} s", controller_back.as_secs_f64()),
    );
    figure(
        "tether exec works again after restart",
        format!("{:.2} s", exec_back.as_secs_f64()),
    );
}
