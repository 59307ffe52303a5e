//! `tether sandbox-exec` under the real kernel, tried as a hostile command would: every
//! escape class of section 5.7 (`CMD-44`, `CMD-62` … `CMD-70`) is attempted and must fail,
//! and an incompletely enforced mode runs nothing (`CMD-46`).
//!
//! Directories the tests give the sandbox live outside the system temporary directory
//! (`support::outside_tmp`), which a sandboxed command does not see (it has a private `/tmp`).
//! When the tests run as root, the key checks run again as `nobody` (`setpriv`), so that
//! both a root host and an unprivileged one are covered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

fn tether() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tether"))
}

/// A fresh directory outside the system temporary directory, readable by everyone (the
/// unprivileged runs use it too).
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sandbox-")
        .tempdir_in(support::outside_tmp())
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn sandbox_cmd(mode: &str, writable: &[&Path], hide: &[&Path], cwd: &Path) -> Command {
    let mut cmd = tether();
    cmd.current_dir(cwd).args(["sandbox-exec", "--mode", mode]);
    for w in writable {
        cmd.arg("--writable").arg(w);
    }
    for h in hide {
        cmd.arg("--hide").arg(h);
    }
    cmd
}

fn sandboxed(mode: &str, writable: &[&Path], script: &str) -> Output {
    let cwd = writable.first().copied().unwrap_or(Path::new("/"));
    sandbox_cmd(mode, writable, &[], cwd)
        .args(["--", "bash", "-c", script])
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The verdict for `mode`, from `--probe`.
fn probe(mode: &str) -> serde_json::Value {
    let out = tether()
        .args(["sandbox-exec", "--probe", "--mode", mode])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether every layer of `mode` holds here. Where it does not (no bubblewrap, no
/// Landlock), the tests check that nothing runs instead.
fn enforced(mode: &str) -> bool {
    let p = probe(mode);
    let complete = p["missing"].as_array().is_some_and(Vec::is_empty);
    if !complete {
        eprintln!("{mode} is not enforced here: {}", p["missing"]);
    }
    complete
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn cmd_44_read_only_refuses_every_write() {
    let dir = scratch();
    let existing = dir.path().join("existing");
    std::fs::write(&existing, "kept").unwrap();
    let target = dir.path().join("new");
    let out = sandbox_cmd("read-only", &[], &[], dir.path())
        .args([
            "--",
            "bash",
            "-c",
            &format!(
                "cat {e}; echo x > {t}; echo y >> {e}; rm -f {e}; mkdir {d}/sub",
                e = existing.display(),
                t = target.display(),
                d = dir.path().display()
            ),
        ])
        .output()
        .unwrap();
    if !enforced("read-only") {
        assert_eq!(
            out.status.code(),
            Some(125),
            "incomplete sandbox must not run"
        );
        return;
    }
    assert_eq!(text(&out.stdout), "kept", "reads are allowed: {out:?}");
    assert!(!target.exists(), "a file appeared under read-only");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "kept");
    assert!(!dir.path().join("sub").exists());
}

#[test]
fn cmd_44_workspace_write_allows_only_its_roots_and_children_inherit() {
    let workspace = scratch();
    let outside = scratch();
    let inside = workspace.path().join("built");
    let escaped = outside.path().join("escaped");
    let out = sandboxed(
        "workspace-write",
        &[workspace.path()],
        &format!(
            "echo ok > {i} && sh -c 'echo x > {o}'; echo status=$?; echo t > /tmp/t && echo tmp=$TMPDIR",
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
    let stdout = text(&out.stdout);
    assert!(stdout.contains("status=2"), "{out:?}");
    assert!(
        stdout.contains("tmp=/tmp"),
        "a private, writable /tmp: {out:?}"
    );
}

#[test]
fn cmd_44_a_writable_root_of_everything_or_around_a_hidden_path_is_refused() {
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let out = sandbox_cmd("workspace-write", &[Path::new("/")], &[], dir.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(text(&out.stderr).contains("whole file system"), "{out:?}");
    let out = sandbox_cmd("workspace-write", &[dir.path()], &[&state], dir.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(text(&out.stderr).contains("CMD-63"), "{out:?}");
}

#[test]
fn cmd_44_67_network_and_every_socket_family_are_refused_unless_full_access() {
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
    let dir = scratch();
    // A pathname Unix socket of the host, in a directory the command can read.
    let sock_path = dir.path().join("host.sock");
    let unix = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    for mode in ["read-only", "workspace-write"] {
        let out = sandboxed(mode, &[dir.path()], &connect);
        assert!(!out.status.success(), "{mode}: TCP connect succeeded");
        let out = sandboxed(mode, &[dir.path()], udp);
        assert!(!out.status.success(), "{mode}: UDP send succeeded");
        if has("python3") {
            let script = format!(
                r#"
import socket
opened = []
for name in ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_VSOCK"]:
    try:
        socket.socket(getattr(socket, name), socket.SOCK_DGRAM if name in ("AF_NETLINK", "AF_PACKET") else socket.SOCK_STREAM)
        opened.append(name)
    except OSError:
        pass
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("{sock}")
    opened.append("connect-unix")
except OSError:
    pass
a, b = socket.socketpair()
a.send(b"x")
print("opened=" + ",".join(opened) + " pair=" + b.recv(1).decode())
"#,
                sock = sock_path.display()
            );
            let out = sandbox_cmd(mode, &[], &[], dir.path())
                .args(["--", "python3", "-c", &script])
                .output()
                .unwrap();
            assert_eq!(
                text(&out.stdout).trim(),
                "opened= pair=x",
                "{mode}: {out:?}"
            );
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        listener.accept().is_err(),
        "a sandboxed connect reached the listener"
    );
    assert!(
        unix.accept().is_err(),
        "a sandboxed connect reached the Unix socket"
    );
}

#[test]
fn cmd_63_hidden_paths_do_not_exist_in_the_view() {
    if !enforced("read-only") {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("host-state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("host.key"), "secret").unwrap();
    let cred = dir.path().join("credential");
    std::fs::write(&cred, "demo-credential-0123").unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    for mode in ["read-only", "workspace-write"] {
        let out = sandbox_cmd(mode, &[&project], &[&state, &cred], &project)
            .args([
                "--",
                "sh",
                "-c",
                &format!(
                    "ls {d}; test -e {s} && echo STATE; cat {s}/host.key {c} 2>/dev/null; \
                     cat /proc/*/cmdline /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c 'demo-cred[e]ntial'; true",
                    d = dir.path().display(),
                    s = state.display(),
                    c = cred.display()
                ),
            ])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("project"),
            "{mode}: siblings stay visible: {out:?}"
        );
        assert!(!stdout.contains("host-state"), "{mode}: {out:?}");
        assert!(!stdout.contains("credential\n"), "{mode}: {out:?}");
        assert!(
            !stdout.contains("STATE") && !stdout.contains("secret"),
            "{mode}: {out:?}"
        );
        assert!(
            stdout.trim_end().ends_with('0'),
            "{mode}: the credential is visible: {out:?}"
        );
    }
}

#[test]
fn cmd_64_metadata_outside_the_roots_cannot_change() {
    if !enforced("read-only") {
        return;
    }
    let dir = scratch();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let file = dir.path().join("victim");
    std::fs::write(&file, "x").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::metadata(&file).unwrap();
    for mode in ["read-only", "workspace-write"] {
        let out = sandbox_cmd(mode, &[&project], &[], &project)
            .args([
                "--",
                "sh",
                "-c",
                &format!(
                    "chmod 600 {f}; chmod 777 {f}; touch -m -d 2000-01-01 {f}; chown 1:1 {f}; true",
                    f = file.display()
                ),
            ])
            .output()
            .unwrap();
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(after.mode(), before.mode(), "{mode}: {out:?}");
        assert_eq!(after.mtime(), before.mtime(), "{mode}: {out:?}");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    }
}

#[test]
fn cmd_65_no_controlling_terminal_and_no_tiocsti() {
    if !enforced("read-only") || !has("script") {
        return;
    }
    // script(1) gives the launcher a controlling terminal, as a host started from a
    // terminal has: the command must not get it.
    let probe = "if (: </dev/tty) 2>/dev/null; then echo HAS-TTY; else echo no-tty; fi; \
                 python3 -c 'import fcntl,termios,os; fcntl.ioctl(0, termios.TIOCSTI, b\"#\")' \
                 </dev/ptmx 2>/dev/null && echo INJECTED; true";
    let control = Command::new("script")
        .args([
            "-qefc",
            &format!("sh -c '{}'", "if (: </dev/tty); then echo HAS-TTY; fi"),
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        text(&control.stdout).contains("HAS-TTY"),
        "the control has a terminal: {control:?}"
    );
    let me = env!("CARGO_BIN_EXE_tether");
    for mode in ["read-only", "workspace-write"] {
        let dir = scratch();
        std::fs::write(dir.path().join("probe.sh"), probe).unwrap();
        let out = Command::new("script")
            .current_dir(dir.path())
            .args([
                "-qefc",
                &format!(
                    "{me} sandbox-exec --mode {mode} --writable {d} -- sh {d}/probe.sh",
                    d = dir.path().display()
                ),
                "/dev/null",
            ])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(stdout.contains("no-tty"), "{mode}: {out:?}");
        assert!(
            !stdout.contains("HAS-TTY") && !stdout.contains("INJECTED"),
            "{mode}: {out:?}"
        );
    }
}

#[test]
fn cmd_66_no_capabilities_no_user_namespaces_even_as_root() {
    if !enforced("read-only") {
        return;
    }
    let dir = scratch();
    let out = sandbox_cmd("workspace-write", &[dir.path()], &[], dir.path())
        .args([
            "--",
            "sh",
            "-c",
            "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status; \
             unshare -Ur true 2>/dev/null && echo USERNS; keyctl show 2>/dev/null && echo KEYS; true",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            stdout.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty: {out:?}"
        );
    }
    assert!(stdout.contains("NoNewPrivs:\t1"), "{out:?}");
    assert!(
        !stdout.contains("USERNS") && !stdout.contains("KEYS"),
        "{out:?}"
    );
}

/// Lines appended to `beacon` every 100 ms by a detached descendant stop once the command
/// has ended.
fn assert_beacon_stops(beacon: &Path, what: &str) {
    std::thread::sleep(Duration::from_millis(800));
    let a = std::fs::metadata(beacon).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(1200));
    let b = std::fs::metadata(beacon).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        a, b,
        "{what}: a descendant kept running after the command ended"
    );
}

#[test]
fn cmd_68_no_descendant_outlives_the_command() {
    if !enforced("workspace-write") {
        return;
    }
    let dir = scratch();
    let beacon = dir.path().join("beacon");
    let start = Instant::now();
    // A detached (setsid) descendant that also holds stdout open.
    let out = sandboxed(
        "workspace-write",
        &[dir.path()],
        &format!(
            "setsid sh -c 'while :; do echo . >> {b}; sleep 0.1; done' & setsid sleep 60 & sleep 0.5; exit 3",
            b = beacon.display()
        ),
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "a descendant holding stdout delayed the end by {:?}",
        start.elapsed()
    );
    assert!(beacon.exists(), "the descendant never ran");
    assert_beacon_stops(&beacon, "exit");

    // Killed from outside, the way the host kills a command's group (CMD-37).
    let beacon = dir.path().join("beacon2");
    let mut child = sandbox_cmd("workspace-write", &[dir.path()], &[], dir.path())
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "setsid sh -c 'while :; do echo . >> {b}; sleep 0.1; done' & sleep 100",
                b = beacon.display()
            ),
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !beacon.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pgid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).unwrap();
    let _ = child.wait();
    assert_beacon_stops(&beacon, "killed");
}

use std::os::unix::process::CommandExt;

#[test]
fn cmd_69_process_count_is_bounded() {
    if !enforced("workspace-write") {
        return;
    }
    let dir = scratch();
    if !has("python3") {
        return;
    }
    // Each child sleeps; the parent counts the forks that worked, up to 1500.
    let script = r#"
import os, time
started = 0
for _ in range(1500):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    started += 1
print(f"running={started}")
"#;
    let out = sandbox_cmd("workspace-write", &[dir.path()], &[], dir.path())
        .args(["--", "python3", "-c", script])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let running: u32 = stdout
        .trim()
        .strip_prefix("running=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {out:?}"));
    assert!(
        running <= tether_sandbox::MAX_PROCESSES,
        "{running} processes ran at once"
    );
    assert!(running > 100, "the probe itself did not work: {out:?}");
}

/// CMD-69 (SHOULD): where the launcher can create a memory cgroup (a host running as
/// root), a command that allocates past its bound is killed inside the sandbox; the probe
/// reports the bound.
#[test]
fn cmd_69_memory_is_bounded_where_a_cgroup_can_be_made() {
    if !enforced("workspace-write") || !has("python3") {
        return;
    }
    let limit = 64u64 << 20;
    let out = tether()
        .args([
            "sandbox-exec",
            "--probe",
            "--mode",
            "workspace-write",
            "--memory-max",
        ])
        .arg(limit.to_string())
        .output()
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if p["memoryLimit"].is_null() {
        assert!(!is_root(), "root can make a memory cgroup here: {p}");
        return;
    }
    assert_eq!(p["memoryLimit"], limit, "{p}");
    let dir = scratch();
    let run = |mib: u64| {
        sandbox_cmd("workspace-write", &[dir.path()], &[], dir.path())
            .args(["--memory-max", &limit.to_string(), "--", "python3", "-c"])
            .arg(format!(
                "x = bytearray({mib} << 20); x[::4096] = b'x' * len(x[::4096]); print('held')"
            ))
            .output()
            .unwrap()
    };
    let small = run(16);
    assert_eq!(text(&small.stdout).trim(), "held", "{small:?}");
    let big = run(256);
    assert_eq!(big.status.signal(), Some(libc::SIGKILL), "{big:?}");
    assert!(!text(&big.stdout).contains("held"), "{big:?}");
}

#[test]
fn cmd_70_git_stays_read_only_under_workspace_write() {
    if !enforced("workspace-write") {
        return;
    }
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join(".git/hooks")).unwrap();
    let hook = dir.path().join(".git/hooks/post-commit");
    let out = sandboxed(
        "workspace-write",
        &[dir.path()],
        &format!(
            "echo evil > {}; echo ok > {}/src.rs",
            hook.display(),
            dir.path().display()
        ),
    );
    assert!(dir.path().join("src.rs").exists(), "{out:?}");
    assert!(!hook.exists(), "a hook was planted: {out:?}");
}

#[test]
fn cmd_39_a_signal_that_ends_the_program_is_relayed() {
    if !enforced("read-only") {
        return;
    }
    let out = sandboxed("read-only", &[], "kill -SEGV $$");
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
    let out = sandboxed("read-only", &[], "exit 7");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

#[test]
fn cmd_45_probe_reports_every_layer() {
    let p = probe("workspace-write");
    assert_eq!(p["requested"], "workspace-write");
    if p["missing"].as_array().is_some_and(Vec::is_empty) {
        assert_eq!(p["mechanism"], "bubblewrap+landlock+seccomp");
        assert!(p["landlockAbi"].as_u64().unwrap() >= 5);
        assert_eq!(p["namespaces"], true);
        assert_eq!(p["privilegesDropped"], true);
        assert_eq!(p["noTerminal"], true);
        assert_eq!(p["processLimit"]["max"], tether_sandbox::MAX_PROCESSES);
    }
    let p = probe("danger-full-access");
    assert_eq!(p["network"], "allowed");
    assert_eq!(p["mechanism"], "none");
}

/// The same escapes, with the launcher run as an unprivileged user (`nobody`): the
/// process limit then comes from `RLIMIT_NPROC` in the command's own user namespace.
#[test]
fn unprivileged_launcher_holds_too() {
    if !is_root() || !has("setpriv") || !enforced("read-only") {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o777)).unwrap();
    let me = PathBuf::from(env!("CARGO_BIN_EXE_tether"));
    let run = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&me)
            .args(args)
            .current_dir(&project)
            .output()
            .unwrap()
    };
    let out = run(&["sandbox-exec", "--probe", "--mode", "workspace-write"]);
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["missing"], serde_json::json!([]), "{out:?}");
    assert_eq!(p["processLimit"]["by"], "rlimit");
    let script = format!(
        "id -u; test -e {s} && echo STATE; grep CapEff /proc/self/status; (: </dev/tty) 2>/dev/null && echo TTY; \
         echo x > {d}/outside 2>/dev/null; echo y > inside; true",
        s = state.display(),
        d = dir.path().display()
    );
    let w = project.to_string_lossy().into_owned();
    let h = state.to_string_lossy().into_owned();
    let out = run(&[
        "sandbox-exec",
        "--mode",
        "workspace-write",
        "--writable",
        &w,
        "--hide",
        &h,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("65534"), "{out:?}");
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{out:?}");
    assert!(
        !stdout.contains("STATE") && !stdout.contains("TTY"),
        "{out:?}"
    );
    assert!(!dir.path().join("outside").exists());
    assert!(project.join("inside").exists(), "{out:?}");
}

#[test]
fn bad_usage_is_reported() {
    let out = tether()
        .args(["sandbox-exec", "--mode", "sideways", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown sandbox mode"));
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
        assert!(text(&out.stderr).contains("cannot run /nonexistent/program"));
    }
}
