//! End to end (issue 3): real `tether relay`, `tether host run` and controller processes
//! over 127.0.0.1. Every wait is bounded and every child is killed on drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

mod support;
use support::*;
use tether_testkit::tap::Tap;

fn start_host(state: &Path, relay_url: &str) -> Proc {
    // The host's temporary directory (writable under workspace-write) is its own, beside
    // its state directory (SEC-22), so that the sandbox test can name a directory outside
    // every writable root wherever the repository and the system temporary directory are.
    let mut c = host_run(state, relay_url);
    c.args(["--name", "build-box", "--allow-unsandboxed"]);
    Proc::quiet(c)
}

/// `tether pair` with the credential from a file of mode 0600 beside the controller's
/// state directory (`--credential-file`).
fn pair_cmd(ctl: &Path, token: &str) -> Output {
    let file = ctl.with_file_name("ctl-credential");
    tether_testkit::dirs::write_private(&file, &format!("{CRED}\n"));
    let mut c = tether();
    c.args(["pair", token, "--state"])
        .arg(ctl)
        .arg("--credential-file")
        .arg(&file)
        .args(["--name", "laptop"]);
    run(c, Duration::from_secs(90))
}

/// Pairs, retrying while the host is not registered yet (HOST_UNREACHABLE leaves the
/// token unused).
fn pair_when_up(ctl: &Path, token: &str) -> Output {
    eventually(LIMIT, "tether pair", || {
        let out = pair_cmd(ctl, token);
        if out.code() == Some(0) {
            Ok(out)
        } else if out.stderr.contains("HOST_UNREACHABLE") {
            Err(format!("{out:?}"))
        } else {
            panic!("pairing failed: {out:?}");
        }
    })
}

fn exec_cmd(ctl: &Path, argv: &[&str]) -> Output {
    TETHER.exec(ctl, argv)
}

/// Runs `argv` until it succeeds at the transport level (exit status other than the
/// failure of an unreachable host), for waits on a host reconnecting.
fn exec_when_up(ctl: &Path, argv: &[&str]) -> Output {
    TETHER.exec_when_up(ctl, argv)
}

fn world() -> World {
    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl_state = TempDir::new("ctl");
    let host = start_host(&host_state.0, &relay.url);
    let token = mint_token(&host_state.0, 300);
    let out = pair_when_up(&ctl_state.0, &token);
    World {
        relay,
        host,
        host_state,
        ctl_state,
    }
    .checked_pair(&out)
}

impl World {
    fn checked_pair(self, out: &Output) -> Self {
        // CHAN-23: the code is printed on its own line before waiting.
        let code_line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("confirmation code: "))
            .unwrap_or_else(|| panic!("no confirmation code: {out:?}"));
        let code = code_line.trim_start_matches("confirmation code: ");
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "{out:?}"
        );
        assert!(out.stdout.contains("paired with build-box ("), "{out:?}");
        self
    }
}

#[test]
fn pair_exec_status_and_token_reuse() {
    let w = world();
    // Output streams arrive intact on their own streams; the remote status is ours.
    let out = exec_when_up(
        &w.ctl_state.0,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, "out\n", "{out:?}");
    assert_eq!(out.stderr, "err\n", "{out:?}");

    let mut c = tether();
    c.args(["status", "--state"]).arg(&w.ctl_state.0);
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("build-box") && out.stdout.contains("reachable"),
        "{out:?}"
    );
    // CMD-77: status shows the defaults the host applies; the default cwd is where a
    // command without one runs.
    let pwd = exec_cmd(&w.ctl_state.0, &["pwd", "-P"]);
    assert_eq!(pwd.code(), Some(0), "{pwd:?}");
    let default_cwd = format!("  default cwd {}  ", pwd.stdout.trim_end());
    assert!(
        out.stdout.contains(&default_cwd),
        "{default_cwd:?} in {out:?}"
    );
    assert!(
        out.stdout.contains("  home /") && out.stdout.contains(" (at most danger-full-access)"),
        "{out:?}"
    );

    // CHAN-12: a token pairs once.
    let token = mint_token(&w.host_state.0, 300);
    let ctl2 = TempDir::new("ctl2");
    let first = pair_when_up(&ctl2.0, &token);
    assert_eq!(first.code(), Some(0), "{first:?}");
    let ctl3 = TempDir::new("ctl3");
    let second = pair_cmd(&ctl3.0, &token);
    assert_eq!(second.code(), Some(1), "{second:?}");
    assert!(
        second
            .stderr
            .contains("pairing refused by host build-box: TOKEN_REJECTED (34)"),
        "{second:?}"
    );
    assert!(second.stderr.contains("(CHAN-12)"), "{second:?}");
    assert_eq!(second.stderr.lines().count(), 1, "{second:?}");
    // Nothing was stored for the refused pairing (CHAN-22).
    let mut c = tether();
    c.args(["status", "--state"]).arg(&ctl3.0);
    let out = run(c, LIMIT);
    assert!(out.stdout.contains("no paired hosts"), "{out:?}");
    drop(w.host);
}

#[test]
fn expired_token_is_refused() {
    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl = TempDir::new("ctl");
    let _host = start_host(&host_state.0, &relay.url);
    let token = mint_token(&host_state.0, 1);
    thread::sleep(Duration::from_millis(2100));
    let out = pair_cmd(&ctl.0, &token);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("token expired (TOKEN-10)"), "{out:?}");
    drop(relay.proc);
}

#[test]
fn revoked_device_is_refused() {
    let w = world();
    let out = exec_when_up(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let mut c = tether();
    c.args(["host", "revoke", "--state"])
        .arg(&w.host_state.0)
        .arg("laptop");
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let out = exec_cmd(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("NOT_AUTHORIZED (32)"), "{out:?}");
    assert!(out.stderr.contains("(CHAN-9)"), "{out:?}");
    drop(w.relay.proc);
}

#[test]
fn another_workspace_cannot_reach_the_host() {
    let w = world();
    // Point the controller's record at workspace "other" of the same relay.
    let path = w.ctl_state.join("controller.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text
        .replace("\"workspace\": \"acme\"", "\"workspace\": \"other\"")
        .replace(CRED, OTHER_CRED);
    assert_ne!(text, edited);
    std::fs::write(&path, edited).unwrap();
    let out = exec_cmd(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("HOST_UNREACHABLE (16)"), "{out:?}");
    assert!(out.stderr.contains("(LINK-17)"), "{out:?}");
    drop(w.host);
}

#[test]
fn replayed_message_1_is_refused() {
    use tether_controller::{ControllerState, Link, LinkOptions, SessionInput, open_session};
    use tether_proto::link::{CloseCode, RelayFrame};

    let w = world();
    let out = exec_when_up(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let rt = tether_testkit::inproc::runtime();
    rt.block_on(async {
        tokio::time::timeout(LIMIT, async {
            let state = ControllerState::open(&w.ctl_state.0).unwrap();
            let host = state.find_host(None).unwrap();
            let opts = LinkOptions::default();
            let link = Link::connect(&host.relay, &host.workspace, &host.credential, &opts)
                .await
                .unwrap();
            let session = open_session(&state, &link, &host).await.unwrap();
            let id = session.id();
            let message1 = session.message1().to_vec();
            session.close(CloseCode::NORMAL).await;
            // The same OPEN again, same session id, on a raw link (CHAN-10).
            let raw = Link::connect(&host.relay, &host.workspace, &host.credential, &opts)
                .await
                .unwrap();
            let mut inputs = raw.register(id).unwrap();
            raw.send_frame(RelayFrame::Open {
                session: id,
                host_key: host.host_key_bytes().unwrap(),
                handshake: message1,
            })
            .unwrap();
            // The first session's last DATA from the host (a WINDOW record, 21 bytes) can
            // reach the relay after this OPEN reused its id, and is then forwarded here:
            // the tail of the closed session, never a message 2, which is at least 48
            // bytes (32-byte key and a 16-byte tag, CHAN-6). Anything else before the
            // CLOSE is the host answering the replay.
            let answer = loop {
                match inputs.recv().await {
                    Some(SessionInput::Data(d)) if d.len() < 48 => {}
                    other => break other,
                }
            };
            assert_eq!(answer, Some(SessionInput::Close(CloseCode::REPLAYED)));
            raw.close(CloseCode::NORMAL).await;
            link.close(CloseCode::NORMAL).await;
        })
        .await
        .expect("replay test timed out");
    });
    drop(w.host);
}

#[test]
fn the_relay_sees_no_plaintext() {
    let w = world();
    let tap = Tap::start(&w.relay.addr);
    let tap_addr = &tap.addr;
    let path = w.ctl_state.join("controller.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(&w.relay.url, &format!("ws://{tap_addr}/"));
    assert_ne!(text, edited);
    std::fs::write(&path, edited).unwrap();
    let marker = "MARKER-c0ffee-5e55-10n";
    let out = exec_when_up(&w.ctl_state.0, &["echo", marker]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("{marker}\n"), "{out:?}");
    let bytes = tap.seen.lock().unwrap().clone();
    assert!(
        bytes.len() > 1000,
        "the tap saw the session ({} bytes)",
        bytes.len()
    );
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(marker.as_bytes()));
    assert!(!contains(b"command/exec"));
    assert!(!contains(b"jsonrpc"));
    // Nor the output's base64 as the outputDelta would carry it.
    assert!(!contains(b"TUFSS0VSLWMwZmZlZS01ZTU1LTEwbgo="));
    drop(w.host);
}

#[test]
fn relay_restart_mid_session_and_host_restart() {
    let mut w = world();
    let out = exec_when_up(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(0), "{out:?}");

    // A long command is running when the relay dies (kill -9).
    let mut c = tether();
    c.args(["exec", "--state"])
        .arg(&w.ctl_state.0)
        .args(["--", "sleep", "20"]);
    let long = thread::spawn(move || run(c, LIMIT));
    thread::sleep(Duration::from_millis(1500));
    let addr = w.relay.addr.clone();
    w.relay.proc.kill();
    let out = long.join().unwrap();
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("tether: exec on host build-box"),
        "{out:?}"
    );

    // A new relay on the same port: the host reconnects (LINK-28) and exec works again.
    let relay = eventually(LIMIT, "restart the relay", || {
        let r = std::panic::catch_unwind(|| start_relay(&addr));
        r.map_err(|_| "port not free yet".to_owned())
    });
    let out = exec_when_up(&w.ctl_state.0, &["echo", "again"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "again\n");

    // Host restarted: the pairing survives.
    w.host.kill();
    let _host = start_host(&w.host_state.0, &relay.url);
    let out = exec_when_up(&w.ctl_state.0, &["echo", "still paired"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "still paired\n");
}

#[test]
fn ctrl_c_ends_a_running_exec() {
    let w = world();
    let out = exec_when_up(&w.ctl_state.0, &["true"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let mut c = tether();
    c.args(["exec", "--state"])
        .arg(&w.ctl_state.0)
        .args(["--", "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Proc::spawn(c);
    thread::sleep(Duration::from_millis(1500));
    child.signal("INT");
    let status = child
        .wait_exit(Duration::from_secs(10))
        .expect("exec did not end on SIGINT");
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.starts_with("tether: interrupted"), "{err}");
    drop(w.relay.proc);
}

/// `tether exec --sandbox MODE` through relay and host: the host runs the command under
/// the kernel sandbox (`CMD-44`), so writes outside what the mode allows never happen.
#[test]
fn sandboxed_exec_is_enforced_by_the_kernel() {
    let probe = run(
        {
            let mut c = tether();
            c.args(["sandbox-exec", "--probe", "--mode", "workspace-write"]);
            c
        },
        LIMIT,
    );
    let enforced = probe.stdout.contains("\"missing\":[]");
    let w = world();
    let project = TempDir::new("project");
    // Outside both writable roots: the project and the host's own TMPDIR (start_host).
    let outside = TempDir::new("outside");
    let inside_file = project.join("built");
    let outside_file = outside.join("escaped");
    let script = format!(
        "echo ok > {}; echo x > {}; true",
        inside_file.display(),
        outside_file.display()
    );
    let mut c = tether();
    c.args(["exec", "--state"])
        .arg(&w.ctl_state.0)
        .args(["--sandbox", "workspace-write", "--cwd"])
        .arg(&project.0)
        .args(["--", "sh", "-c", &script]);
    let out = run(c, LIMIT);
    if enforced {
        assert_eq!(out.code(), Some(0), "{out:?}");
        assert!(
            inside_file.exists(),
            "the project root is writable: {out:?}"
        );
        assert!(!outside_file.exists(), "wrote outside the project: {out:?}");
        // CMD-62: the host's temporary directory is not even in the command's view.
        assert!(out.stderr.contains("nonexistent"), "{out:?}");
        // The kernel enforces the mode: the host must not have degraded it (SEC-18).
        assert!(!out.stderr.contains("degraded"), "{out:?}");
    } else {
        // The test host runs with --allow-unsandboxed: degraded, but it ran.
        assert!(inside_file.exists(), "{out:?}");
    }

    // read-only: no write anywhere.
    let ro_file = project.join("ro");
    let mut c = tether();
    c.args(["exec", "--state"])
        .arg(&w.ctl_state.0)
        .args(["--sandbox", "read-only", "--cwd"])
        .arg(&project.0)
        .args(["--", "sh", "-c", &format!("echo x > {}", ro_file.display())]);
    let out = run(c, LIMIT);
    if enforced {
        assert_ne!(out.code(), Some(0), "{out:?}");
        assert!(!ro_file.exists(), "a file appeared under read-only");
    }
}

/// CMD-71: `tether exec` without `--cwd` runs in the host's default working directory
/// (here the host's own directory: it was started without `--project`), never in `/`.
#[test]
fn exec_without_cwd_runs_in_the_hosts_default_directory() {
    let w = world();
    let out = exec_when_up(&w.ctl_state.0, &["sh", "-c", "pwd -P"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    // The host runs in the test's directory (cargo starts tests in the package root).
    let expected = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
    assert_eq!(out.stdout.trim_end(), expected.to_str().unwrap(), "{out:?}");
    assert_ne!(out.stdout.trim_end(), "/");
}

/// SEC-23: the workspace credential reaches neither the commands the host runs (their
/// environment) nor anyone reading the host's command line.
#[test]
fn sec_23_commands_never_see_the_credential() {
    let w = world();
    let script = "echo \"env=${TETHER_CREDENTIAL-unset}\"; \
                  printf 'host='; tr '\\0' ' ' < /proc/$PPID/cmdline; echo";
    let out = exec_when_up(&w.ctl_state.0, &["sh", "-c", script]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("env=unset\n"), "{out:?}");
    assert!(out.stdout.contains("host="), "{out:?}");
    assert!(!out.stdout.contains(CRED), "{out:?}");
}
