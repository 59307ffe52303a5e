//! Process-level fixtures: the real `tether` binary as a relay, a host and a paired
//! controller on loopback ([`ExecStack`]), a plain TCP forwarder process
//! ([`ForwarderPath`]), and one measured run of a command whose output this process reads to
//! its end ([`StreamRun`]), with the CPU time of every process on the path.
//!
//! The `tether` binary is the one the caller names ([`tether_bin`]): `$TETHER_BIN`, else
//! `tether` in the directory cargo put this package's binaries in (where
//! `cargo build --profile PROFILE -p tether` puts it for the same profile). `ci/bench-gate`
//! builds it first and sets `TETHER_BIN`. State directories go to `/dev/shm` (or
//! `$TETHER_BENCH_STATE_DIR`), never under `/tmp` nor inside the host's project (the host
//! refuses both, `SEC-22`).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tether_proto::limits::HANDSHAKE_RATE_PER_SEC;
use tether_testkit::cli::{Relay, Tether};
use tether_testkit::proc::{Proc, wait_line};

use crate::e2e::{CREDENTIAL, WORKSPACE, state_root};
use crate::sys::{CpuSample, cpu_sample, thread_cpu_time, wait_ended};

/// The environment variable naming the `tether` binary the process benches run.
pub const TETHER_BIN: &str = "TETHER_BIN";

/// The reader's buffer, the same for every path.
const READ_BUFFER: usize = 128 * 1024;

/// The `tether` binary: `$TETHER_BIN`, else `tether` in `bin_dir` (the directory of this
/// package's binaries for the profile being run).
///
/// # Errors
/// If neither exists, saying how to build it.
pub fn tether_bin(bin_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(TETHER_BIN) {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "{TETHER_BIN}={} is not a file", p.display());
        return Ok(p);
    }
    let candidate = bin_dir.map(|d| d.join("tether"));
    match candidate {
        Some(p) if p.is_file() => Ok(p),
        _ => bail!(
            "no tether binary: set {TETHER_BIN}=PATH, or build it with the profile of this run \
             (`cargo build --profile bench -p tether` for `cargo bench`); ci/bench-gate does \
             both"
        ),
    }
}

/// One run of a command whose output this process read to its end, and the CPU time of
/// the processes on its path.
#[derive(Clone, Debug, Default)]
pub struct StreamRun {
    /// Bytes read.
    pub bytes: u64,
    /// From the spawn until the command ended (its output read to the end).
    pub wall: Duration,
    /// This thread, which spawned the command and read its output.
    pub reader: Duration,
    /// The spawned process, all its threads, and the children it waited for (see
    /// [`CpuSample::since`]: a multi-threaded process at the resolution of a clock tick,
    /// 10 ms).
    pub child: Duration,
    /// Each watched long-lived process (in the order given), with the children it waited
    /// for in between.
    pub watched: Vec<Duration>,
}

impl StreamRun {
    /// The CPU time of every process on the path, this reader included.
    pub fn total_cpu(&self) -> Duration {
        self.reader + self.child + self.watched.iter().sum::<Duration>()
    }
}

/// Spawns a command with `spawn` (which returns it and the stream its output arrives on),
/// reads that stream to its end, waits for the command, and checks that it succeeded and
/// that `expect` bytes came (when given). The CPU time of `watch` (long-lived processes on
/// the path) is sampled around the run.
///
/// # Errors
/// If the command cannot be run, fails, or delivers another number of bytes.
pub fn measure_stream(
    spawn: impl FnOnce() -> Result<(Child, Box<dyn Read>)>,
    expect: Option<u64>,
    watch: &[u32],
) -> Result<StreamRun> {
    let before: Vec<CpuSample> = watch
        .iter()
        .map(|&p| cpu_sample(p))
        .collect::<Result<_>>()?;
    let (reader0, start) = (thread_cpu_time(), Instant::now());
    let (mut child, mut out) = spawn()?;
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let mut buf = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the output"),
        }
    }
    drop(out);
    wait_ended(&child)?;
    let wall = start.elapsed();
    let reader = thread_cpu_time().saturating_sub(reader0);
    // A zombie: only its main thread's `schedstat` is left, which is all of a
    // single-threaded command's time, precisely (`head`); when other threads used more than
    // two ticks, the tick counters hold the total (`tether exec`).
    let child_cpu = cpu_sample(child.id())?.since(&CpuSample::default());
    let status = child.wait()?;
    let after: Vec<CpuSample> = watch
        .iter()
        .map(|&p| cpu_sample(p))
        .collect::<Result<_>>()?;
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    ensure!(
        status.success(),
        "the command failed ({status}): {}",
        err.trim()
    );
    if let Some(want) = expect {
        ensure!(
            bytes == want,
            "read {bytes} bytes, expected {want}; stderr: {}",
            err.trim()
        );
    }
    Ok(StreamRun {
        bytes,
        wall,
        reader,
        child: child_cpu,
        watched: after.iter().zip(&before).map(|(a, b)| a.since(b)).collect(),
    })
}

/// `command` with stdin closed and stdout and stderr piped, spawned; its stdout as the
/// stream to read.
///
/// # Errors
/// If it cannot be spawned.
pub fn spawn_piped(mut command: Command) -> Result<(Child, Box<dyn Read>)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {command:?}"))?;
    let out = child.stdout.take().context("no stdout")?;
    Ok((child, Box::new(out)))
}

/// Runs `command` (stdin closed) to its end and returns its stdout; fails if it fails.
///
/// # Errors
/// If it cannot be run or exits unsuccessfully.
pub fn output_of(mut command: Command) -> Result<Vec<u8>> {
    let what = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}

/// The correctness pass of a path: the output of `seq 1 300000` (about 2 MB of numbered
/// lines) through it is byte for byte what it is here.
///
/// # Errors
/// If it differs, naming `what`.
pub fn check_pattern(what: &str, through: impl FnOnce(&[&str]) -> Command) -> Result<()> {
    let argv = ["seq", "1", "300000"];
    let mut local = Command::new(argv[0]);
    local.args(&argv[1..]);
    let want = output_of(local)?;
    let got = output_of(through(&argv))?;
    ensure!(
        got == want,
        "{what}: `seq 1 300000` came through as {} bytes differing from the {} bytes it prints \
         here",
        got.len(),
        want.len()
    );
    Ok(())
}

/// A `tether relay`, a `tether host run` registered with it, and a controller state
/// directory paired with the host, all processes of the given binary on 127.0.0.1.
pub struct ExecStack {
    tether: Tether,
    relay: Relay,
    host: Proc,
    controller: PathBuf,
    last_exec: Option<Instant>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for ExecStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStack")
            .field("relay", &self.relay.url)
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl ExecStack {
    /// Starts the relay and the host and pairs the controller (`tether pair`).
    ///
    /// # Errors
    /// If a directory cannot be made or the pairing fails (the launchers of
    /// `tether-testkit` panic on a child that does not come up in time).
    pub fn start(tether: &Path) -> Result<Self> {
        let bin: &'static str = Box::leak(tether.to_string_lossy().into_owned().into_boxed_str());
        let tether = Tether::new(bin);
        let dir = state_root()?;
        let host_state = dir.path().join("host");
        let controller = dir.path().join("controller");
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project)?;
        let relay = Relay::start(tether.relay_command("127.0.0.1:0", &[(WORKSPACE, CREDENTIAL)]));
        let mut host = tether.host_run(&host_state, &relay.url, WORKSPACE, CREDENTIAL);
        host.arg("--project")
            .arg(&project)
            .args(["--name", "bench-host", "--allow-unsandboxed"])
            .current_dir(&project);
        let host = Proc::quiet(host);
        let token = tether.mint_token(&host_state, 300);
        let out = tether.pair_when_up(&controller, &token, CREDENTIAL, "bench");
        ensure!(out.code() == Some(0), "tether pair failed: {out:?}");
        Ok(Self {
            tether,
            relay,
            host,
            controller,
            last_exec: None,
            _dir: dir,
        })
    }

    /// The relay's process id.
    pub fn relay_pid(&self) -> u32 {
        self.relay.proc.pid()
    }

    /// The host's process id.
    pub fn host_pid(&self) -> u32 {
        self.host.pid()
    }

    /// `tether exec --state CONTROLLER -- ARGV...`, not started.
    pub fn exec_command(&self, argv: &[&str]) -> Command {
        let mut c = self.tether.command();
        c.arg("exec")
            .arg("--state")
            .arg(&self.controller)
            .arg("--")
            .args(argv);
        c
    }

    /// Waits, if need be, until a new session stays within the host's handshake rate
    /// (`CHAN-14`, 50 a second, with 25 % slack). Call it outside the timed section, before
    /// each `tether exec`.
    pub fn pace(&mut self) {
        let interval = Duration::from_secs(1) / HANDSHAKE_RATE_PER_SEC * 5 / 4;
        if let Some(last) = self.last_exec {
            let since = last.elapsed();
            if since < interval {
                std::thread::sleep(interval - since);
            }
        }
        self.last_exec = Some(Instant::now());
    }
}

/// The plain-forwarder path of the CPU comparison: `head -c N /dev/zero` writes into a TCP
/// connection to a forwarder process (the `tcp-forwarder` binary: tokio's
/// `copy_bidirectional` with 64 KiB buffers), which connects to a listener here that reads
/// everything.
#[derive(Debug)]
pub struct ForwarderPath {
    forwarder: Proc,
    /// Where the forwarder listens.
    pub addr: SocketAddr,
    listener: TcpListener,
}

impl ForwarderPath {
    /// Starts `tcp-forwarder` (the binary at `bin`) towards a new listener here.
    ///
    /// # Errors
    /// If binding or starting the forwarder fails.
    pub fn start(bin: &Path) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let target = listener.local_addr()?;
        let mut c = Command::new(bin);
        c.arg(target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut forwarder = Proc::spawn(c);
        let stdout = forwarder.0.stdout.take().context("no stdout")?;
        let line = wait_line(stdout, "LISTEN ", Duration::from_secs(30))
            .context("tcp-forwarder did not say where it listens")?;
        let addr = line
            .trim_start_matches("LISTEN ")
            .trim()
            .parse()
            .context("tcp-forwarder's LISTEN line")?;
        Ok(Self {
            forwarder,
            addr,
            listener,
        })
    }

    /// The forwarder's process id.
    pub fn pid(&self) -> u32 {
        self.forwarder.pid()
    }

    /// One run: `argv` (e.g. `head -c N /dev/zero`) with its stdout connected to the
    /// forwarder, read here to the end (see [`measure_stream`]; the forwarder is watched).
    ///
    /// # Errors
    /// As [`measure_stream`].
    pub fn run(&self, argv: &[&str], expect: Option<u64>) -> Result<StreamRun> {
        let (program, args) = argv.split_first().context("empty argv")?;
        measure_stream(
            || {
                let to_forwarder = TcpStream::connect(self.addr)?;
                let mut c = Command::new(program);
                c.args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(OwnedFd::from(to_forwarder)))
                    .stderr(Stdio::piped());
                let child = c.spawn().with_context(|| format!("spawning {c:?}"))?;
                let (from_forwarder, _) = self.listener.accept()?;
                Ok((child, Box::new(from_forwarder)))
            },
            expect,
            &[self.pid()],
        )
    }
}
