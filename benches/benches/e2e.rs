//! `e2e/*`: the reference relay, host and controller on loopback in one tokio runtime,
//! and the baselines measured in the same run; `e2e/exec-*`, `e2e/*-cpu`: the `tether`
//! binary's relay, host and `tether exec` as processes, against OpenSSH and a plain TCP
//! forwarder process (`BENCHMARKS.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tether_benches::config::{e2e_settings, exec_stream_bytes, process_settings};
use tether_benches::e2e::{
    SnowWsServer, TcpForwarder, TcpSink, TetherStack, request_rtt, stream, stream_baseline,
    stream_message,
};
use tether_benches::exec::{
    ExecStack, ForwarderPath, StreamRun, check_pattern, measure_stream, spawn_piped, tether_bin,
};
use tether_benches::ssh::Sshd;
use tokio::net::TcpStream;

/// Hosts the connections are spread over, so that no host's handshake rate limit
/// (`CHAN-14`, 50 a second) is what gets measured.
const HOSTS: usize = 4;

fn e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (warm, measure, samples) = e2e_settings();
    let mut stack = rt.block_on(TetherStack::start(HOSTS)).unwrap();
    let snow_server = rt.block_on(SnowWsServer::start()).unwrap();
    let sink = rt.block_on(TcpSink::start()).unwrap();
    let forwarder = rt.block_on(TcpForwarder::start(sink.addr)).unwrap();

    let mut g = c.benchmark_group("e2e");
    g.warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples);

    g.bench_function("connect", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let host = stack.pace().await;
                    let start = Instant::now();
                    let conn = stack.connect_to(host).await.unwrap();
                    total += start.elapsed();
                    conn.close().await;
                }
                total
            })
        })
    });

    let initiator_static = [0x61u8; 32];
    g.bench_function("connect-baseline", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The same idle time before each connection as `connect` has (its
                    // pacing), so that both start from the same state: parked worker
                    // threads and colder caches cost a connection after a pause more
                    // than one in a tight loop.
                    let _ = stack.pace().await;
                    let start = Instant::now();
                    let (ws, transport) = snow_server.connect(&initiator_static).await.unwrap();
                    total += start.elapsed();
                    drop((ws, transport));
                }
                total
            })
        })
    });

    let host = rt.block_on(stack.pace());
    let conn = rt.block_on(stack.connect_to(host)).unwrap();
    g.bench_function("request-rtt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    request_rtt(&conn).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    let (message, len) = stream_message().unwrap();
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("stream-64k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                stream(&conn, &message, iters).await.unwrap();
                start.elapsed()
            })
        })
    });

    let chunk = vec![b'x'; len];
    let mut tcp = rt
        .block_on(async {
            let tcp = TcpStream::connect(forwarder.addr).await?;
            tcp.set_nodelay(true)?;
            Ok::<_, std::io::Error>(tcp)
        })
        .unwrap();
    g.bench_function("stream-baseline", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                stream_baseline(&mut tcp, &chunk, iters).await.unwrap();
                start.elapsed()
            })
        })
    });
    g.finish();

    rt.block_on(async {
        conn.close().await;
        drop(tcp);
        stack.shutdown().await;
    });
    drop((snow_server, forwarder, sink));
}

/// The `tcp-forwarder` binary of this package, built with the bench (and the directory
/// where `cargo build -p tether` with the same profile puts `tether`).
const FORWARDER: &str = env!("CARGO_BIN_EXE_tcp-forwarder");

/// Sums `f` over `iters` iterations (criterion's `iter_custom`).
fn sum(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn exec(c: &mut Criterion) {
    let tether = match tether_bin(Path::new(FORWARDER).parent()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("e2e/exec-*, e2e/*-cpu: skipped: {e:#}");
            return;
        }
    };
    eprintln!("e2e/exec-*: tether binary {}", tether.display());
    let mut stack = ExecStack::start(&tether).unwrap();
    check_pattern("tether exec", |argv| stack.exec_command(argv)).unwrap();
    let sshd = match Sshd::start() {
        Ok(s) => {
            check_pattern("ssh", |argv| s.command(&argv.join(" "))).unwrap();
            Some(s)
        }
        Err(e) => {
            eprintln!("e2e/exec-256m-ssh, e2e/exec-cold-ssh: skipped: {e:#}");
            None
        }
    };
    let forwarder = ForwarderPath::start(Path::new(FORWARDER)).unwrap();

    let bytes = exec_stream_bytes();
    let count = bytes.to_string();
    let head = ["head", "-c", count.as_str(), "/dev/zero"];
    let head_remote = head.join(" ");
    let (relay, host) = (stack.relay_pid(), stack.host_pid());

    // One `tether exec` of the stream, its relay and host watched.
    let tether_run = |stack: &mut ExecStack| -> StreamRun {
        stack.pace();
        measure_stream(
            || spawn_piped(stack.exec_command(&head)),
            Some(bytes),
            &[relay, host],
        )
        .unwrap()
    };

    let (warm, measure, samples) = process_settings();
    let mut g = c.benchmark_group("e2e");
    g.warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples)
        .sampling_mode(SamplingMode::Flat);

    // Wall time of a whole stream, read to its end.
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("exec-256m", |b| {
        b.iter_custom(|iters| sum(iters, || tether_run(&mut stack).wall))
    });
    if let Some(sshd) = &sshd {
        g.bench_function("exec-256m-ssh", |b| {
            b.iter_custom(|iters| {
                sum(iters, || {
                    stack.pace();
                    measure_stream(|| spawn_piped(sshd.command(&head_remote)), Some(bytes), &[])
                        .unwrap()
                        .wall
                })
            })
        });
    }

    // CPU time (not wall time) of every process on the path per stream: relay, host (and
    // `head`, its child), `tether exec` and the reader here, against `head`, the forwarder
    // and the reader; then the relay alone against the forwarder alone.
    g.bench_function("exec-cpu", |b| {
        b.iter_custom(|iters| sum(iters, || tether_run(&mut stack).total_cpu()))
    });
    g.bench_function("exec-cpu-baseline", |b| {
        b.iter_custom(|iters| {
            sum(iters, || {
                forwarder.run(&head, Some(bytes)).unwrap().total_cpu()
            })
        })
    });
    g.bench_function("relay-cpu", |b| {
        b.iter_custom(|iters| sum(iters, || tether_run(&mut stack).watched[0]))
    });
    g.bench_function("relay-cpu-baseline", |b| {
        b.iter_custom(|iters| {
            sum(iters, || {
                forwarder.run(&head, Some(bytes)).unwrap().watched[0]
            })
        })
    });

    // A new process that connects, runs `true` and closes.
    g.throughput(Throughput::Elements(1));
    g.bench_function("exec-cold", |b| {
        b.iter_custom(|iters| {
            sum(iters, || {
                stack.pace();
                measure_stream(|| spawn_piped(stack.exec_command(&["true"])), Some(0), &[])
                    .unwrap()
                    .wall
            })
        })
    });
    if let Some(sshd) = &sshd {
        g.bench_function("exec-cold-ssh", |b| {
            b.iter_custom(|iters| {
                sum(iters, || {
                    stack.pace();
                    measure_stream(|| spawn_piped(sshd.command("true")), Some(0), &[])
                        .unwrap()
                        .wall
                })
            })
        });
    }
    g.finish();
    drop((sshd, forwarder, stack));
}

criterion_group!(benches, e2e, exec);
criterion_main!(benches);
