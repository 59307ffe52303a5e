//! End to end: flow control and messages of any size (`spec/04` section 4.13, `CHAN-31`
//! .. `CHAN-36`) through real `tether relay`, `tether host run` and `tether exec` processes
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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use tether_controller::{
    ControllerState, LinkOptions, connect, thread_export, thread_import, thread_read,
};
use tether_proto::cmd::types::{
    AgentMessageItem, ApprovalPolicy, SandboxMode, ThreadBundle, ThreadItem,
};

mod support;
use support::*;
use tether_testkit::inproc::runtime;

fn world() -> World {
    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl_state = TempDir::new("ctl");
    let mut c = host_run(&host_state.0, &relay.url);
    c.args(["--name", "build-box", "--allow-unsandboxed"]);
    let host = Proc::quiet(c);
    let token = mint_token(&host_state.0, 300);
    eventually(LIMIT, "tether pair", || {
        let out = TETHER.pair(&ctl_state.0, &token, CRED, "laptop");
        if out.code() == Some(0) {
            Ok(())
        } else if out.stderr.contains("HOST_UNREACHABLE") {
            Err(format!("{out:?}"))
        } else {
            panic!("pairing failed: {out:?}");
        }
    });
    World {
        relay,
        host,
        host_state,
        ctl_state,
    }
}

/// `tether exec --state CTL ARGS... -- COMMAND...`, stdout piped, stderr captured.
fn exec_cmd(ctl: &Path, args: &[&str], command: &[&str]) -> Command {
    let mut c = tether();
    c.arg("exec").arg("--state").arg(ctl).args(args).arg("--");
    c.args(command);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// `tether exec` of `command` started: the child, its stdout to read, and a thread that
/// collects its stderr.
fn spawn_exec(
    ctl: &Path,
    command: &[&str],
) -> (
    std::process::Child,
    std::process::ChildStdout,
    std::thread::JoinHandle<String>,
) {
    let mut child = exec_cmd(ctl, &[], command).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    (child, stdout, err_reader)
}

/// The BLAKE2s digest and length of what `command` prints when run here.
fn local_digest(command: &[&str]) -> (String, usize) {
    let out = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap();
    (
        hex::encode(Blake2s256::digest(&out.stdout)),
        out.stdout.len(),
    )
}

/// CHAN-34, CHAN-36, CMD-74: the whole output of a command arrives byte for byte through a
/// reader that takes it slowly and stops for 10 s in the middle. While the reader stops,
/// the command itself waits in its writes (it has not finished when the pause ends), and
/// the session survives: no `SLOW_READER` from the relay (LINK-22), no loss.
#[test]
fn a_reader_that_pauses_holds_the_command_back_and_loses_nothing() {
    let w = world();
    let marker_dir = TempDir::new("marker");
    let done = marker_dir.join("done");
    // About 14 MB of numbered lines, then a marker file once every line is written.
    let script = format!("seq 1 2000000; touch {}", done.display());
    let (want, want_len) = local_digest(&["seq", "1", "2000000"]);

    let (mut child, mut stdout, err_reader) = spawn_exec(&w.ctl_state.0, &["sh", "-c", &script]);

    let mut hash = Blake2s256::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut paused = false;
    let deadline = Instant::now() + LIMIT * 4;
    loop {
        assert!(Instant::now() < deadline, "the output did not end in time");
        if !paused && got >= 2 * 1024 * 1024 {
            // The reader stops for 10 s with 12 MB still to come.
            paused = true;
            std::thread::sleep(Duration::from_secs(10));
            assert!(
                !done.exists(),
                "the command finished while its reader was stopped: its output was not held \
                 back (CMD-74, CHAN-34)"
            );
        }
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        got += n;
        // Slow: about 16 MB/s at most.
        std::thread::sleep(Duration::from_millis(4));
    }
    let status = child.wait().unwrap();
    let err = err_reader.join().unwrap();
    assert!(paused, "the output ended before the pause: {got} bytes");
    assert_eq!(got, want_len, "stderr: {err}");
    assert_eq!(hex::encode(hash.finalize()), want, "the bytes differ");
    assert!(status.success(), "tether exec failed: {status:?}\n{err}");
    assert!(!err.contains("SLOW_READER"), "{err}");
    assert!(!err.contains("output cap"), "{err}");
    assert!(done.exists(), "the command did not run to its end");
    drop(w);
}

/// CMD-41: `--output-cap` stops the command after exactly that many bytes and says so;
/// without it all of the output arrives (more than the 1 MiB default cap of version 1).
#[test]
fn output_cap_is_an_option_and_the_default_is_all_of_it() {
    let w = world();
    let out = run(
        exec_cmd(
            &w.ctl_state.0,
            &["--output-cap", "1000"],
            &["seq", "1", "100000"],
        ),
        LIMIT,
    );
    let (full, _) = local_digest(&["seq", "1", "100000"]);
    assert_eq!(out.code(), Some(137), "{out:?}"); // killed at the cap (CMD-37)
    assert_eq!(out.stdout.len(), 1000, "{out:?}");
    assert!(out.stderr.contains("output cap"), "{out:?}");

    let out = run(
        exec_cmd(&w.ctl_state.0, &[], &["seq", "1", "400000"]),
        LIMIT,
    );
    let (want, want_len) = local_digest(&["seq", "1", "400000"]);
    assert!(want_len > 2 * 1024 * 1024);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.len(), want_len);
    assert_eq!(hex::encode(Blake2s256::digest(out.stdout.as_bytes())), want);
    assert_ne!(want, full);
    drop(w);
}

/// A reader that goes away: `tether exec` exits with 141 (128 + SIGPIPE, as a shell
/// reports a writer killed by a closed pipe), says nothing on stderr, and its session's
/// end kills the endless command on the host (`CMD-37`). Output written before the reader
/// left arrives in order.
#[test]
fn a_reader_that_closes_the_pipe_ends_exec_and_the_command() {
    let w = world();
    let marker_dir = TempDir::new("pid");
    let pid_file = marker_dir.join("pid");
    let script = format!("echo $$ > {}; exec seq 1 1000000000", pid_file.display());
    let (mut child, mut stdout, err_reader) = spawn_exec(&w.ctl_state.0, &["sh", "-c", &script]);
    let mut head = vec![0u8; 1 << 20];
    stdout.read_exact(&mut head).unwrap();
    let (want, _) = local_digest(&["sh", "-c", "seq 1 1000000 | head -c 1048576"]);
    assert_eq!(
        hex::encode(Blake2s256::digest(&head)),
        want,
        "the first MiB differs"
    );
    drop(stdout);

    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tether exec kept running without a reader"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(141), "{err}");
    assert!(
        err.is_empty(),
        "a closed pipe is not an error to report: {err}"
    );

    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = Path::new("/proc").join(pid.trim());
    eventually(LIMIT, "the command to be killed on the host", || {
        match std::fs::read_to_string(proc_dir.join("stat")) {
            // Gone, or a zombie waiting for the host to reap it.
            Err(_) => Ok(()),
            Ok(stat) if stat.contains(") Z ") => Ok(()),
            Ok(stat) => Err(format!("still running: {stat}")),
        }
    });
    drop(w);
}

/// CHAN-33: a 10 MiB request and a 10 MiB result cross the session whole, each split
/// into `PART` records within the window and reassembled: a thread with a 10 MiB agent
/// message is imported, read back and exported.
#[test]
fn a_10_mib_request_and_result_round_trip() {
    let w = world();
    runtime().block_on(async {
        tokio::time::timeout(LIMIT * 4, async {
            let state = ControllerState::open(&w.ctl_state.0).unwrap();
            let host = state.find_host(None).unwrap();
            let conn = connect(&state, &host, &LinkOptions::default())
                .await
                .unwrap();
            assert!(conn.session.has_records(), "CHAN-31: records negotiated");
            // 10 MiB of text that is not one repeated byte.
            let text: String = (0..10 * 1024 * 1024)
                .map(|i: u32| char::from(b'a' + (i % 26) as u8))
                .collect();
            let bundle = ThreadBundle {
                version: 1,
                goal: Some("large".to_owned()),
                cwd_relative: ".".to_owned(),
                sandbox: SandboxMode::ReadOnly,
                approval_policy: ApprovalPolicy::OnRequest,
                items: vec![ThreadItem::AgentMessage(AgentMessageItem::new(
                    "item-1",
                    text.clone(),
                ))],
                exported_at: 1_790_000_000,
            };
            let opened = thread_import(&conn.session, bundle, None).await.unwrap();
            let id = opened.thread.id.clone();
            let read = thread_read(&conn.session, &id).await.unwrap();
            let texts: Vec<&str> = read
                .thread
                .turns
                .iter()
                .flat_map(|t| &t.items)
                .filter_map(|i| match i {
                    ThreadItem::AgentMessage(m) => Some(m.text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(texts, vec![text.as_str()], "thread/read lost bytes");
            let exported = thread_export(&conn.session, &id).await.unwrap();
            assert!(
                matches!(&exported.items[..], [ThreadItem::AgentMessage(m)] if m.text == text),
                "tether/thread/export lost bytes"
            );
            conn.close().await;
        })
        .await
        .expect("timed out");
    });
    drop(w);
}
