//! Where `e2e/stream-64k` stands against `e2e/stream-baseline`: wall time **and CPU time**
//! per 64 KiB message, for the same fixtures the criterion bench uses (`BENCHMARKS.md`).
//!
//! ```text
//! stream-cpu [--messages N] [--rounds R]
//! ```
//!
//! Both paths run in one tokio runtime with two worker threads, as in the bench, and the
//! process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`: every thread, user and system, the
//! kernel's TCP work included) is read around each. When both paths keep the machine's
//! cores busy, their throughput ratio cannot beat the inverse ratio of their CPU per
//! message, whatever the pipelining: this is the bound the tool prints.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tether_benches::e2e::{
    TcpForwarder, TcpSink, TetherStack, stream, stream_baseline, stream_message,
};
use tether_benches::sys::process_cpu_time;
use tokio::net::TcpStream;

#[derive(Debug)]
struct Args {
    messages: u64,
    rounds: u32,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        messages: 2000,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => args.messages = value()?.parse().context("--messages")?,
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            "-h" | "--help" => {
                println!("usage: stream-cpu [--messages N (2000)] [--rounds R (3)]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if args.messages == 0 || args.rounds == 0 {
        bail!("--messages and --rounds must be at least 1");
    }
    Ok(args)
}

/// Wall and CPU time per message of one timed section.
fn per_message(wall: Duration, cpu: Duration, n: u64) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    (wall.as_secs_f64() * 1e6 / n, cpu.as_secs_f64() * 1e6 / n)
}

async fn run(args: &Args) -> Result<()> {
    let mut stack = TetherStack::start(1).await?;
    let i = stack.pace().await;
    let conn = stack.connect_to(i).await?;
    let (message, len) = stream_message()?;
    let sink = TcpSink::start().await?;
    let forwarder = TcpForwarder::start(sink.addr).await?;
    let mut tcp = TcpStream::connect(forwarder.addr).await?;
    tcp.set_nodelay(true)?;
    let chunk = vec![b'x'; len];
    println!(
        "stream-cpu: {} messages of {len} bytes per path and round, one runtime, 2 worker threads",
        args.messages
    );
    println!(
        "round  tether wall/cpu per msg   baseline wall/cpu per msg   throughput ratio  cpu bound"
    );
    for round in 1..=args.rounds {
        let (c0, t0) = (process_cpu_time(), Instant::now());
        stream(&conn, &message, args.messages).await?;
        let (tw, tc) = per_message(t0.elapsed(), process_cpu_time() - c0, args.messages);
        let (c1, t1) = (process_cpu_time(), Instant::now());
        stream_baseline(&mut tcp, &chunk, args.messages).await?;
        let (bw, bc) = per_message(t1.elapsed(), process_cpu_time() - c1, args.messages);
        println!(
            "{round:>5}  {tw:>8.1} / {tc:>6.1} us        {bw:>8.1} / {bc:>6.1} us          {:>5.2} x          {:>5.2} x",
            bw / tw,
            bc / tc
        );
    }
    conn.close().await;
    drop(tcp);
    stack.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stream-cpu: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stream-cpu: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream-cpu: {e:#}");
            ExitCode::FAILURE
        }
    }
}
