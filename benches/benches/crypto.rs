//! `handshake/*` and `transport-{64k,1k}/*` (`BENCHMARKS.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_benches::channel::{HandshakeInputs, RawAead, SnowDefault};
use tether_benches::config::fast_settings;

fn handshake(c: &mut Criterion) {
    let (warm, measure, samples) = fast_settings();
    let tether = HandshakeInputs::new().unwrap();
    let snow = SnowDefault::new().unwrap();
    let mut g = c.benchmark_group("handshake");
    g.warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples);
    g.bench_function("tether", |b| {
        b.iter(|| black_box(tether.handshake().unwrap()))
    });
    g.bench_function("snow-default", |b| {
        b.iter(|| black_box(snow.handshake().unwrap()))
    });
    g.finish();
}

fn transport(c: &mut Criterion, group: &str, len: usize) {
    let (warm, measure, samples) = fast_settings();
    let (mut tx, mut rx) = HandshakeInputs::new().unwrap().handshake().unwrap();
    let (mut stx, mut srx) = SnowDefault::new().unwrap().handshake().unwrap();
    let raw = RawAead::new().unwrap();
    let plaintext = vec![0xa5u8; len];
    let mut g = c.benchmark_group(group);
    g.warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples);
    g.throughput(Throughput::Bytes(len as u64));
    let mut wire = Vec::with_capacity(len + 16);
    let mut out = Vec::with_capacity(len);
    g.bench_function("tether", |b| {
        b.iter(|| {
            wire.clear();
            out.clear();
            tx.encrypt(black_box(&plaintext), &mut wire).unwrap();
            rx.decrypt(&wire, &mut out).unwrap();
            black_box(&out);
        })
    });
    let mut swire = vec![0u8; len + 16];
    let mut sout = vec![0u8; len];
    g.bench_function("snow-default", |b| {
        b.iter(|| {
            let n = stx
                .write_message(black_box(&plaintext), &mut swire)
                .unwrap();
            srx.read_message(&swire[..n], &mut sout).unwrap();
            black_box(&sout);
        })
    });
    let mut buf = plaintext.clone();
    let mut nonce = 0u64;
    g.bench_function("aead-raw", |b| {
        b.iter(|| {
            nonce += 1;
            raw.seal_open(nonce, black_box(&mut buf)).unwrap();
        })
    });
    g.finish();
}

fn transports(c: &mut Criterion) {
    // "64k": the largest transport plaintext, 65519 bytes (CHAN-16).
    transport(
        c,
        "transport-64k",
        tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN,
    );
    transport(c, "transport-1k", 1024);
}

criterion_group!(benches, handshake, transports);
criterion_main!(benches);
