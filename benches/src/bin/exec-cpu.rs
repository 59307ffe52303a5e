//! CPU time per streamed byte, process by process: `tether exec -- head -c N /dev/zero`
//! through a `tether relay` and a `tether host run` on loopback, against the same bytes
//! through a plain TCP forwarder process (`BENCHMARKS.md`; the criterion ids
//! `e2e/exec-cpu` and `e2e/relay-cpu` measure the same runs' totals).
//!
//! ```text
//! exec-cpu [--tether PATH] [--bytes N] [--rounds R]
//! ```
//!
//! The `tether` binary is `--tether`, else `$TETHER_BIN`, else `tether` beside this
//! program (`cargo build --release -p tether -p tether-benches` puts both in
//! `target/release`). Each process's user + system time comes from `/proc` (its live
//! threads' `schedstat`, or `stat` when a thread ended in between) around each run; the
//! command that ends (`tether exec`, or `head` on the forwarder path) and the children the
//! host waits for (`head`) at the resolution of a clock tick, 10 ms.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tether_benches::exec::{ExecStack, ForwarderPath, measure_stream, spawn_piped, tether_bin};

#[derive(Debug)]
struct Args {
    tether: Option<PathBuf>,
    bytes: u64,
    rounds: u32,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        tether: None,
        bytes: 256 << 20,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tether" => args.tether = Some(value()?.into()),
            "--bytes" => args.bytes = value()?.parse().context("--bytes")?,
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            "-h" | "--help" => {
                println!(
                    "usage: exec-cpu [--tether PATH] [--bytes N (268435456)] [--rounds R (3)]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if args.bytes == 0 || args.rounds == 0 {
        bail!("--bytes and --rounds must be at least 1");
    }
    Ok(args)
}

/// Milliseconds, for the table.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(args: &Args) -> Result<()> {
    let me = std::env::current_exe()?;
    let dir = me.parent();
    let tether = match &args.tether {
        Some(t) => t.clone(),
        None => tether_bin(dir)?,
    };
    let forwarder_bin = dir
        .map(|d| d.join("tcp-forwarder"))
        .filter(|p| p.is_file())
        .context("no tcp-forwarder beside this program (cargo build -p tether-benches)")?;
    let mut stack = ExecStack::start(&tether)?;
    let forwarder = ForwarderPath::start(&forwarder_bin)?;
    let count = args.bytes.to_string();
    let head = ["head", "-c", count.as_str(), "/dev/zero"];
    let (relay, host) = (stack.relay_pid(), stack.host_pid());
    #[allow(clippy::cast_precision_loss)]
    let mib = args.bytes as f64 / f64::from(1u32 << 20);

    println!(
        "exec-cpu: {} bytes per run ({mib:.0} MiB), tether binary {}",
        args.bytes,
        tether.display()
    );
    println!("CPU milliseconds (user + system) per run; the last column per MiB");
    println!(
        "round  path       wall ms   middle(relay|fwd)  host+head  exec|head  reader    total   total/MiB"
    );
    for round in 1..=args.rounds {
        stack.pace();
        let t = measure_stream(
            || spawn_piped(stack.exec_command(&head)),
            Some(args.bytes),
            &[relay, host],
        )?;
        let f = forwarder.run(&head, Some(args.bytes))?;
        let (t_relay, t_host) = (
            t.watched.first().copied().unwrap_or_default(),
            t.watched.get(1).copied().unwrap_or_default(),
        );
        let f_fwd = f.watched.first().copied().unwrap_or_default();
        println!(
            "{round:>5}  tether   {:>9.1}   {:>12.1}      {:>9.1}  {:>9.1}  {:>7.1}  {:>8.1}   {:>8.3}",
            ms(t.wall),
            ms(t_relay),
            ms(t_host),
            ms(t.child),
            ms(t.reader),
            ms(t.total_cpu()),
            ms(t.total_cpu()) / mib
        );
        println!(
            "{round:>5}  forward  {:>9.1}   {:>12.1}      {:>9}  {:>9.1}  {:>7.1}  {:>8.1}   {:>8.3}",
            ms(f.wall),
            ms(f_fwd),
            "-",
            ms(f.child),
            ms(f.reader),
            ms(f.total_cpu()),
            ms(f.total_cpu()) / mib
        );
        println!(
            "       ratios: total CPU {:.2} x (budget <= 1.5), relay / forwarder {:.2} x (budget <= 1.3), wall {:.2} x",
            t.total_cpu().as_secs_f64() / f.total_cpu().as_secs_f64().max(1e-9),
            t_relay.as_secs_f64() / f_fwd.as_secs_f64().max(1e-9),
            t.wall.as_secs_f64() / f.wall.as_secs_f64().max(1e-9),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec-cpu: {e:#}");
            ExitCode::FAILURE
        }
    }
}
