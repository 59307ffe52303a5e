//! Launchers of the `tether` binary as the end-to-end tests start it: `tether relay` on
//! loopback (its URL read from its "listening on" line), `tether host run` with the
//! workspace credential in `TETHER_CREDENTIAL` (never on the command line, `SEC-23`) and its
//! temporary directory beside its state directory (`SEC-22`), and `pair`/`exec`.
//!
//! The binary's path comes from the caller: `env!("CARGO_BIN_EXE_tether")` exists only in
//! the `tether` crate's own tests, so they write
//! `const TETHER: Tether = Tether::new(env!("CARGO_BIN_EXE_tether"));`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::LIMIT;
use crate::dirs::beside;
use crate::proc::{Output, Proc, run, wait_line};
use crate::wait::eventually;

/// What `tether relay` prints once it listens, before its URL.
pub const LISTENING: &str = "tether relay listening on ";
/// What `tether host run` prints once it is registered, before its fingerprint.
pub const HOST_READY: &str = "tether host ready: ";
/// The most stderr lines [`Relay::start_logged`] keeps.
pub const MAX_LOG_LINES: usize = 100_000;

/// The `tether` binary.
#[derive(Debug, Clone, Copy)]
pub struct Tether {
    bin: &'static str,
}

impl Tether {
    /// The binary at `bin`.
    pub const fn new(bin: &'static str) -> Self {
        Self { bin }
    }

    /// `tether` without the environment the tests control (`RUST_LOG`, `TETHER_FAULT`,
    /// `TETHER_CREDENTIAL`).
    pub fn command(&self) -> Command {
        let mut c = Command::new(self.bin);
        c.env_remove("RUST_LOG")
            .env_remove("TETHER_FAULT")
            .env_remove("TETHER_CREDENTIAL");
        c
    }

    /// `tether ARGS...` run to its end within [`LIMIT`].
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(args);
        run(c, LIMIT)
    }

    /// `tether relay --listen LISTEN --workspace ID=CREDENTIAL...`, stderr dropped; not
    /// started (see [`Relay::start`]).
    pub fn relay_command(&self, listen: &str, workspaces: &[(&str, &str)]) -> Command {
        let mut c = self.command();
        c.args(["relay", "--listen", listen]).stderr(Stdio::null());
        for (id, credential) in workspaces {
            c.arg("--workspace").arg(format!("{id}={credential}"));
        }
        c
    }

    /// `tether host run --state STATE --relay URL --workspace WORKSPACE` with `credential`
    /// in `TETHER_CREDENTIAL` and `TMPDIR` set to `STATE-tmp` beside the state directory
    /// (created); not started.
    pub fn host_run(
        &self,
        state: &Path,
        relay_url: &str,
        workspace: &str,
        credential: &str,
    ) -> Command {
        let mut c = self.command();
        c.env("TMPDIR", beside(state, "tmp"))
            .env("TETHER_CREDENTIAL", credential)
            .args(["host", "run", "--state"])
            .arg(state)
            .args(["--relay", relay_url, "--workspace", workspace]);
        c
    }

    /// `tether host pair --state STATE --ttl TTL`, retried until `host run` has written
    /// its `run.json`; the token text.
    pub fn mint_token(&self, state: &Path, ttl: u64) -> String {
        eventually(LIMIT, "tether host pair", || {
            let mut c = self.command();
            c.args(["host", "pair", "--state"])
                .arg(state)
                .args(["--ttl", &ttl.to_string()]);
            let out = run(c, LIMIT);
            let token = out
                .stdout
                .lines()
                .find(|l| l.starts_with("TETHER:"))
                .map(str::to_owned);
            match (out.code(), token) {
                (Some(0), Some(t)) => Ok(t),
                _ => Err(format!("{out:?}")),
            }
        })
    }

    /// `tether pair TOKEN --state CTL --credential CREDENTIAL --name NAME` (at most 90 s:
    /// a pairing may wait for the host's confirmation).
    pub fn pair(&self, ctl: &Path, token: &str, credential: &str, name: &str) -> Output {
        let mut c = self.command();
        c.args(["pair", token, "--state"]).arg(ctl).args([
            "--credential",
            credential,
            "--name",
            name,
        ]);
        run(c, Duration::from_secs(90))
    }

    /// [`Tether::pair`] retried while the host is not registered yet (`HOST_UNREACHABLE`
    /// leaves the token unused); the first answer that is not `HOST_UNREACHABLE`.
    pub fn pair_when_up(&self, ctl: &Path, token: &str, credential: &str, name: &str) -> Output {
        eventually(LIMIT, "tether pair", || {
            let out = self.pair(ctl, token, credential, name);
            if out.stderr.contains("HOST_UNREACHABLE") {
                Err(format!("{out:?}"))
            } else {
                Ok(out)
            }
        })
    }

    /// `tether exec --state CTL -- ARGV...` within [`LIMIT`].
    pub fn exec(&self, ctl: &Path, argv: &[&str]) -> Output {
        let mut c = self.command();
        c.args(["exec", "--state"]).arg(ctl).arg("--").args(argv);
        run(c, LIMIT)
    }

    /// [`Tether::exec`] retried until the host answers: any exit but a transport failure
    /// (stderr starting `tether:`).
    pub fn exec_when_up(&self, ctl: &Path, argv: &[&str]) -> Output {
        eventually(LIMIT, "tether exec", || {
            let out = self.exec(ctl, argv);
            if out.stderr.starts_with("tether:") {
                Err(format!("{out:?}"))
            } else {
                Ok(out)
            }
        })
    }
}

/// A running `tether relay` child.
pub struct Relay {
    /// The process.
    pub proc: Proc,
    /// Its URL, `ws://HOST:PORT/`.
    pub url: String,
    /// Its `HOST:PORT`.
    pub addr: String,
    /// Its stderr lines (kept by [`Relay::start_logged`] only; at most
    /// [`MAX_LOG_LINES`]).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Starts a relay command (see [`Tether::relay_command`]; stdin null, stdout piped,
    /// stderr as `cmd` sets it) and waits (at most [`LIMIT`]) for its "listening on" line.
    pub fn start(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut proc = Proc::spawn(cmd);
        let stdout = proc.0.stdout.take().unwrap();
        let line = wait_line(stdout, LISTENING, LIMIT)
            .unwrap_or_else(|| panic!("{what} printed no listening line"));
        let (url, addr) = parse_listening(&line);
        Self {
            proc,
            url,
            addr,
            log: Arc::default(),
        }
    }

    /// [`Relay::start`] with `RUST_LOG=info` and stderr's lines kept in [`Relay::log`].
    pub fn start_logged(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd);
        let stdout = proc.0.stdout.take().unwrap();
        let stderr = proc.0.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let mut kept = kept.lock().unwrap();
                if kept.len() < MAX_LOG_LINES {
                    kept.push(line);
                }
            }
        });
        let line = wait_line(stdout, LISTENING, LIMIT)
            .unwrap_or_else(|| panic!("{what} printed no listening line"));
        let (url, addr) = parse_listening(&line);
        Self {
            proc,
            url,
            addr,
            log,
        }
    }

    /// Waits up to `limit` until a kept log line containing `needle` has appeared `n`
    /// times.
    pub fn wait_log(&self, needle: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let count = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if count >= n {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The URL (with a trailing `/`) and `HOST:PORT` of a "listening on" line.
fn parse_listening(line: &str) -> (String, String) {
    let url = line
        .strip_prefix(LISTENING)
        .unwrap_or_else(|| panic!("unexpected relay line {line:?}"))
        .trim()
        .to_owned();
    let addr = url
        .trim_start_matches("ws://")
        .trim_start_matches("wss://")
        .trim_end_matches('/')
        .to_owned();
    let url = if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    };
    (url, addr)
}
