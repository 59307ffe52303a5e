//! Child processes for tests: a [`Proc`] is killed (SIGKILL) and reaped when dropped, so
//! that a failing test leaves nothing running; [`run`] runs a command to its end within a
//! bound and captures its output; [`start_until`] starts a server and waits for the line
//! that says it is up. Captured output is capped at [`MAX_CAPTURE`] bytes a stream.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The most bytes kept of one captured stream; the rest is read and dropped, so that the
/// child never blocks on a full pipe and the test's memory stays bounded.
pub const MAX_CAPTURE: u64 = 16 << 20;

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    /// Spawns `cmd` with stdin, stdout and stderr as `cmd` sets them.
    pub fn spawn(mut cmd: Command) -> Self {
        Self(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }

    /// Spawns `cmd` with no stdin and its stdout and stderr dropped.
    pub fn quiet(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::spawn(cmd)
    }

    /// Spawns `cmd` with no stdin and its stdout and stderr piped, for [`Proc::finish`].
    pub fn piped(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self::spawn(cmd)
    }

    /// Kills the process and reaps it (nothing if it has ended already).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `signal` (`"INT"`, `"TERM"`, `"HUP"`…) with kill(1); panics if it fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits up to `limit` for the process to end by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the process to end and collects what it wrote on its piped
    /// stdout and stderr (see [`Proc::piped`]); panics if it is still running.
    pub fn finish(mut self, limit: Duration) -> Output {
        let out = self.0.stdout.take().map(capture);
        let err = self.0.stderr.take().map(capture);
        let status = self
            .wait_exit(limit)
            .unwrap_or_else(|| panic!("child did not finish in {limit:?}"));
        Output {
            status,
            stdout: out.map(|t| t.join().unwrap()).unwrap_or_default(),
            stderr: err.map(|t| t.join().unwrap()).unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `from` to its end in a thread, keeping the first [`MAX_CAPTURE`] bytes.
fn capture(from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut from = from;
        let _ = from.by_ref().take(MAX_CAPTURE).read_to_end(&mut kept);
        let _ = std::io::copy(&mut from, &mut std::io::sink());
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// What a finished command wrote, and how it ended.
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout (lossy UTF-8, at most [`MAX_CAPTURE`] bytes).
    pub stdout: String,
    /// Its stderr (lossy UTF-8, at most [`MAX_CAPTURE`] bytes).
    pub stderr: String,
}

impl Output {
    /// The exit code; `None` if a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` (no stdin) to completion within `limit`, capturing stdout and stderr;
/// kills it and panics if it overruns.
pub fn run(cmd: Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = Proc::piped(cmd);
    let out = child.0.stdout.take().map(capture);
    let err = child.0.stderr.take().map(capture);
    let Some(status) = child.wait_exit(limit) else {
        child.kill();
        panic!("{what} did not finish within {limit:?}");
    };
    Output {
        status,
        stdout: out.map(|t| t.join().unwrap()).unwrap_or_default(),
        stderr: err.map(|t| t.join().unwrap()).unwrap_or_default(),
    }
}

/// Starts `cmd` with stdout piped (stdin null, stderr as `cmd` sets it) and waits up to
/// `limit` for a stdout line starting with `prefix`; returns the process and that line.
/// The rest of stdout is drained in the background, so that the child never blocks on a
/// full pipe.
pub fn start_until(mut cmd: Command, prefix: &str, limit: Duration) -> (Proc, String) {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut proc = Proc::spawn(cmd);
    let stdout = proc.0.stdout.take().unwrap();
    let line = wait_line(stdout, prefix, limit)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} from {what}"));
    (proc, line)
}

/// Waits up to `limit` for a line of `stdout` starting with `prefix` and returns it;
/// keeps draining `stdout` in the background either way.
pub fn wait_line(stdout: ChildStdout, prefix: &str, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    let wanted = prefix.to_owned();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&wanted)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(limit).ok()
}
