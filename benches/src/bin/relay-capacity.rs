//! Relay capacity: opens N concurrent sessions through one reference relay running in its
//! own process, and reports the relay's resident memory per session and the aggregate
//! throughput of M active sessions (`BENCHMARKS.md`).
//!
//! ```text
//! relay-capacity [--sessions N] [--active M] [--seconds S] [--payload BYTES]
//! ```
//!
//! - The relay is this program re-run as `relay-capacity --serve` (a `tether_relay`
//!   `RelayServer` on 127.0.0.1 and nothing else), so its `/proc/PID/status` `VmRSS`
//!   counts only the relay.
//! - Hosts: `ceil(N / 64)` relay clients that register (`LINK-12`) and answer each
//!   `INCOMING` with a 48-byte `DATA` (the size of message 2), 64 sessions each
//!   (`LINK-20`).
//! - Sessions: N controller links, each `HELLO`/`READY`, one `OPEN` with a 96-byte message
//!   1, answered; then idle (they answer the relay's `PING`, `LINK-25`).
//! - Memory per idle session: (relay RSS with the N sessions - relay RSS with the hosts
//!   only) / N.
//! - Throughput: the first M sessions send `DATA` of BYTES each to their hosts for S
//!   seconds; a host acknowledges every 4th frame, and a sender keeps at most 8 frames
//!   unacknowledged (below the 256 KiB per-session bound, `LINK-22`).
//!
//! It raises `RLIMIT_NOFILE` to what N needs (both processes), and stops with a message
//! if the hard limit is too low.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tether_benches::e2e::{CREDENTIAL, WORKSPACE};
use tether_benches::sys::{nofile_hard_limit, raise_nofile, rss_bytes};
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_SESSIONS_PER_HOST;
use tether_proto::link::{RelayFrame, SessionId};
use tether_relay::client::{self, ClientLink};
use tether_testkit::inproc;
use tether_testkit::proc::{Proc, wait_line};
use tokio::sync::{Semaphore, watch};

/// Frames a host receives per acknowledgement.
const ACK_EVERY: u64 = 4;
/// Unacknowledged frames a sender may have (8 x 16 KiB = 128 KiB < 256 KiB, `LINK-22`).
const WINDOW: u64 = 8;
/// Connections being set up at once.
const PARALLEL_SETUP: usize = 128;
/// Bound on each set-up step.
const STEP: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Args {
    sessions: usize,
    active: usize,
    seconds: u64,
    payload: usize,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        sessions: 10_000,
        active: 100,
        seconds: 5,
        payload: 16 * 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse::<usize>()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--serve" => return Ok(None),
            "--sessions" => args.sessions = value("--sessions")?,
            "--active" => args.active = value("--active")?,
            "--seconds" => args.seconds = value("--seconds")? as u64,
            "--payload" => args.payload = value("--payload")?,
            "-h" | "--help" => {
                println!(
                    "relay-capacity [--sessions N (10000)] [--active M (100)] [--seconds S (5)] [--payload BYTES (16384)]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if args.sessions == 0 || args.active > args.sessions || args.payload == 0 {
        bail!("need 0 < --active <= --sessions and --payload > 0");
    }
    if args.payload > tether_proto::limits::MAX_NOISE_MESSAGE_LEN {
        bail!("--payload is at most 65535 bytes (one Noise message)");
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-capacity: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match parse_args()? {
        None => rt.block_on(serve()),
        Some(args) => rt.block_on(measure(args)),
    }
}

/// Child mode: the relay alone; prints its address, runs until stdin closes.
async fn serve() -> Result<()> {
    let relay = inproc::relay(&[(WORKSPACE, CREDENTIAL.as_bytes())]).await;
    println!("ADDR {}", relay.local_addr());
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await?;
    relay.shutdown().await;
    Ok(())
}

struct RelayChild {
    proc: Proc,
    url: String,
}

impl Drop for RelayChild {
    fn drop(&mut self) {
        // Closing stdin asks the relay to stop; `Proc` kills it if it has not within 5 s.
        drop(self.proc.0.stdin.take());
        let _ = self.proc.wait_exit(Duration::from_secs(5));
    }
}

fn spawn_relay() -> Result<RelayChild> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut proc = Proc::spawn(cmd);
    let stdout = proc.0.stdout.take().context("relay stdout")?;
    let line = wait_line(stdout, "ADDR ", Duration::from_secs(30))
        .context("the relay process printed no address")?;
    let addr = line.trim().trim_start_matches("ADDR ").to_owned();
    Ok(RelayChild {
        proc,
        url: format!("ws://{addr}/"),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn measure(args: Args) -> Result<()> {
    let hosts = args.sessions.div_ceil(MAX_SESSIONS_PER_HOST);
    // Each process holds one descriptor per link, plus its listener, runtime and stdio.
    let need = (args.sessions + hosts + 256) as u64;
    let limit = raise_nofile(need)?;
    if limit < need {
        bail!(
            "RLIMIT_NOFILE hard limit is {:?}, {need} descriptors are needed for {} sessions; \
             raise it (ulimit -Hn, /etc/security/limits.conf) or pass a smaller --sessions",
            nofile_hard_limit(),
            args.sessions
        );
    }
    let relay = spawn_relay()?;
    let pid = relay.proc.pid();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_empty = rss_bytes(pid)?;

    // Hosts.
    let received = Arc::new(AtomicU64::new(0));
    let mut host_keys = Vec::with_capacity(hosts);
    let setup = Arc::new(Semaphore::new(PARALLEL_SETUP));
    let mut joins = Vec::with_capacity(hosts);
    for i in 0..hosts {
        let private: [u8; 32] =
            std::array::from_fn(|b| u8::try_from((i * 31 + b * 7 + 1) % 251).unwrap_or(1));
        host_keys.push(public_key(&private));
        let url = relay.url.clone();
        let received = received.clone();
        let permit = setup.clone().acquire_owned().await?;
        joins.push(tokio::spawn(async move {
            let link = tokio::time::timeout(STEP, register_host(&url, &private))
                .await
                .map_err(|_| anyhow!("host registration timed out"))??;
            drop(permit);
            tokio::spawn(run_host(link, received));
            Ok::<_, anyhow::Error>(())
        }));
    }
    for j in joins {
        j.await??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_hosts = rss_bytes(pid)?;

    // Sessions.
    let started = Instant::now();
    let (go_tx, go_rx) = watch::channel(false);
    let sent = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(args.active);
    let mut joins = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let url = relay.url.clone();
        let host_key = *host_keys.get(i % hosts).context("host key")?;
        let permit = setup.clone().acquire_owned().await?;
        let active = i < args.active;
        let go = go_rx.clone();
        let sent = sent.clone();
        let payload = args.payload;
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let session = SessionId((i as u64).to_be_bytes());
            let opened = tokio::time::timeout(STEP, open_session(&url, host_key, session)).await;
            drop(permit);
            let mut link = match opened {
                Ok(Ok(link)) => link,
                Ok(Err(e)) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
                Err(_) => {
                    let _ = opened_tx.send(Err(anyhow!("session {i} set-up timed out")));
                    return;
                }
            };
            let _ = opened_tx.send(Ok(()));
            if active {
                let _ = run_sender(&mut link, session, go, payload, sent).await;
            } else {
                run_idle(&mut link).await;
            }
        });
        if active {
            senders.push(task);
        }
        joins.push(opened_rx);
    }
    for (i, j) in joins.into_iter().enumerate() {
        j.await
            .map_err(|_| anyhow!("session {i} task ended"))?
            .with_context(|| format!("session {i}"))?;
    }
    let setup_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_sessions = rss_bytes(pid)?;
    let per_session = rss_sessions.saturating_sub(rss_hosts) / args.sessions as u64;

    // Throughput.
    let before = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    go_tx.send(true)?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let moved = received.load(Ordering::Relaxed) - before;
    let elapsed = t0.elapsed();
    let _ = go_tx.send(false);
    let rss_active = rss_bytes(pid)?;
    for s in senders {
        s.abort();
    }

    println!("relay-capacity: one reference relay in its own process (pid {pid})");
    println!(
        "  sessions            {} idle ({} hosts x <= {} sessions), set up in {:.1} s",
        args.sessions,
        hosts,
        MAX_SESSIONS_PER_HOST,
        setup_time.as_secs_f64()
    );
    println!("  relay RSS empty     {:.1} MiB", mib(rss_empty));
    println!("  relay RSS + hosts   {:.1} MiB", mib(rss_hosts));
    println!("  relay RSS + sessions {:.1} MiB", mib(rss_sessions));
    println!(
        "  per idle session    {:.2} KiB  (target <= 16 KiB: {})",
        per_session as f64 / 1024.0,
        if per_session <= 16 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  throughput          {:.1} MiB/s aggregate, {} active sessions, {} B DATA, {:.1} s",
        mib(moved) / elapsed.as_secs_f64(),
        args.active,
        args.payload,
        elapsed.as_secs_f64()
    );
    println!("  relay RSS active    {:.1} MiB", mib(rss_active));
    println!(
        "RESULT sessions={} per_session_bytes={} throughput_bytes_per_s={:.0} rss_sessions={} rss_hosts={}",
        args.sessions,
        per_session,
        moved as f64 / elapsed.as_secs_f64(),
        rss_sessions,
        rss_hosts
    );
    drop(relay);
    Ok(())
}

async fn register_host(url: &str, private: &[u8; 32]) -> Result<ClientLink> {
    inproc::host_link(url, private, WORKSPACE, CREDENTIAL.as_bytes()).await
}

/// A host: answers `INCOMING` with a 48-byte `DATA`, counts and acknowledges `DATA`.
async fn run_host(mut link: ClientLink, received: Arc<AtomicU64>) {
    let mut frames: std::collections::HashMap<SessionId, u64> = std::collections::HashMap::new();
    while let Ok(Some(frame)) = client::recv_frame(&mut link).await {
        let reply = match frame {
            RelayFrame::Incoming { session, .. } => Some(RelayFrame::Data {
                session,
                payload: vec![0x48; 48],
            }),
            RelayFrame::Data { session, payload } => {
                received.fetch_add(payload.len() as u64, Ordering::Relaxed);
                let n = frames.entry(session).or_insert(0);
                *n += 1;
                n.is_multiple_of(ACK_EVERY).then(|| RelayFrame::Data {
                    session,
                    payload: vec![1],
                })
            }
            RelayFrame::Ping { value } => Some(RelayFrame::Pong { value }),
            _ => None,
        };
        if let Some(reply) = reply
            && client::send_frame(&mut link, &reply).await.is_err()
        {
            return;
        }
    }
}

async fn open_session(url: &str, host_key: [u8; 32], session: SessionId) -> Result<ClientLink> {
    let mut link = client::connect(url, None).await?;
    inproc::controller_hello(&mut link, WORKSPACE, CREDENTIAL.as_bytes()).await?;
    client::send_frame(
        &mut link,
        &RelayFrame::Open {
            session,
            host_key,
            handshake: vec![0x31; 96],
        },
    )
    .await?;
    loop {
        match client::recv_frame(&mut link).await? {
            Some(RelayFrame::Data { .. }) => return Ok(link),
            Some(RelayFrame::Ping { value }) => {
                client::send_frame(&mut link, &RelayFrame::Pong { value }).await?;
            }
            Some(RelayFrame::Close { code, .. }) => bail!("OPEN refused: {code}"),
            Some(_) => {}
            None => bail!("link closed after OPEN"),
        }
    }
}

/// An idle session: answers `PING` until the link ends.
async fn run_idle(link: &mut ClientLink) {
    while let Ok(Some(frame)) = client::recv_frame(link).await {
        if let RelayFrame::Ping { value } = frame
            && client::send_frame(link, &RelayFrame::Pong { value })
                .await
                .is_err()
        {
            return;
        }
    }
}

/// An active session: idle until `go`, then sends `DATA` with at most [`WINDOW`] frames
/// unacknowledged.
async fn run_sender(
    link: &mut ClientLink,
    session: SessionId,
    mut go: watch::Receiver<bool>,
    payload: usize,
    sent: Arc<AtomicU64>,
) -> Result<()> {
    loop {
        tokio::select! {
            changed = go.changed() => {
                changed?;
                if *go.borrow() {
                    break;
                }
            }
            frame = client::recv_frame(link) => {
                if let Some(RelayFrame::Ping { value }) = frame? {
                    client::send_frame(link, &RelayFrame::Pong { value }).await?;
                }
            }
        }
    }
    let data = RelayFrame::Data {
        session,
        payload: vec![0x77; payload],
    };
    let mut unacked = 0u64;
    loop {
        while unacked < WINDOW {
            client::send_frame(link, &data).await?;
            sent.fetch_add(payload as u64, Ordering::Relaxed);
            unacked += 1;
        }
        match client::recv_frame(link).await? {
            Some(RelayFrame::Data { .. }) => unacked = unacked.saturating_sub(ACK_EVERY),
            Some(RelayFrame::Ping { value }) => {
                client::send_frame(link, &RelayFrame::Pong { value }).await?;
            }
            Some(RelayFrame::Close { code, .. }) => bail!("session closed: {code}"),
            Some(_) => {}
            None => bail!("link closed"),
        }
    }
}
