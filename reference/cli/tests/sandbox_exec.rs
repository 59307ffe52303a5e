//! `tether sandbox-exec` under the real kernel: writes outside what the mode allows never
//! happen, IP sockets are refused, and an incompletely enforced mode runs nothing
//! (`CMD-44`, `CMD-45`, `CMD-46`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn tether() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tether"))
}

fn sandboxed(mode: &str, writable: &[&Path], script: &str) -> Output {
    let mut cmd = tether();
    cmd.args(["sandbox-exec", "--mode", mode]);
    for w in writable {
        cmd.arg("--writable").arg(w);
    }
    cmd.args(["--", "bash", "-c", script]).output().unwrap()
}

/// The kernel's verdict for `mode`, from `--probe`.
fn probe(mode: &str) -> serde_json::Value {
    let out = tether()
        .args([
            "sandbox-exec",
            "--probe",
            "--mode",
            mode,
            "--writable",
            "/tmp",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn enforced(mode: &str) -> bool {
    let p = probe(mode);
    p["filesystem"] == true && p["network"] == "denied"
}

#[test]
fn cmd_44_read_only_refuses_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing");
    std::fs::write(&existing, "kept").unwrap();
    let target = dir.path().join("new");
    let out = sandboxed(
        "read-only",
        &[],
        &format!(
            "cat {e}; echo x > {t}; echo y >> {e}; rm -f {e}; mkdir {d}/sub",
            e = existing.display(),
            t = target.display(),
            d = dir.path().display()
        ),
    );
    if !enforced("read-only") {
        assert_eq!(
            out.status.code(),
            Some(125),
            "incomplete sandbox must not run"
        );
        return;
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "kept",
        "reads are allowed"
    );
    assert!(!target.exists(), "a file appeared under read-only");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "kept");
    assert!(!dir.path().join("sub").exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
}

#[test]
fn cmd_44_workspace_write_allows_only_its_roots_and_children_inherit() {
    let workspace = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let inside = workspace.path().join("built");
    let escaped = outside.path().join("escaped");
    let out = sandboxed(
        "workspace-write",
        &[workspace.path()],
        &format!(
            "echo ok > {i} && sh -c 'echo x > {o}'; echo status=$?",
            i = inside.display(),
            o = escaped.display()
        ),
    );
    if !enforced("workspace-write") {
        assert_eq!(out.status.code(), Some(125));
        return;
    }
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "ok\n");
    assert!(
        !escaped.exists(),
        "a grandchild wrote outside the workspace"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("status=2"));
}

#[test]
fn cmd_44_network_is_refused_unless_full_access() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connect = format!("echo hi > /dev/tcp/127.0.0.1/{port}");
    let udp = "echo hi > /dev/udp/127.0.0.1/9";

    let open = sandboxed("danger-full-access", &[], &connect);
    assert!(open.status.success(), "{open:?}");
    let mut accepted = None;
    for _ in 0..100 {
        if let Ok((s, _)) = listener.accept() {
            accepted = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(accepted.is_some(), "full access could not connect");

    if !enforced("read-only") {
        return;
    }
    for mode in ["read-only", "workspace-write"] {
        let out = sandboxed(mode, &[Path::new("/tmp")], &connect);
        assert!(!out.status.success(), "{mode}: TCP connect succeeded");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
        let out = sandboxed(mode, &[Path::new("/tmp")], udp);
        assert!(!out.status.success(), "{mode}: UDP send succeeded");
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        listener.accept().is_err(),
        "a sandboxed connect reached the listener"
    );
}

#[test]
fn cmd_45_probe_reports_the_mode_and_mechanism() {
    let p = probe("workspace-write");
    assert_eq!(p["requested"], "workspace-write");
    let mechanism = p["mechanism"].as_str().unwrap();
    if p["filesystem"] == true && p["network"] == "denied" {
        assert_eq!(mechanism, "landlock+seccomp");
        assert!(p["landlockAbi"].as_u64().unwrap() >= 3);
    }
    let p = probe("danger-full-access");
    assert_eq!(p["network"], "allowed");
    assert_eq!(p["mechanism"], "none");
}

#[test]
fn bad_usage_is_reported() {
    let out = tether()
        .args(["sandbox-exec", "--mode", "sideways", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sandbox mode"));
    let out = tether()
        .args([
            "sandbox-exec",
            "--mode",
            "read-only",
            "--",
            "/nonexistent/program",
        ])
        .output()
        .unwrap();
    if enforced("read-only") {
        assert_eq!(out.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/program"));
    }
}
