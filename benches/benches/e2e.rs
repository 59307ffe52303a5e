//! `e2e/*`: the reference relay, host and controller on loopback in one tokio runtime,
//! and the baselines measured in the same run (`BENCHMARKS.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_benches::config::e2e_settings;
use tether_benches::e2e::{
    SnowWsServer, TcpForwarder, TcpSink, TetherStack, request_rtt, stream, stream_baseline,
    stream_message,
};
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

criterion_group!(benches, e2e);
criterion_main!(benches);
