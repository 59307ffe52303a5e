//! `codec/*`: decoding a pairing token, a relay frame and a JSON-RPC message
//! (`BENCHMARKS.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_benches::config::fast_settings;
use tether_proto::cmd::{Message, Request};
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::token::PairingToken;

fn codec(c: &mut Criterion) {
    let (warm, measure, samples) = fast_settings();
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples);

    // A pairing token as scanned from a QR code: text form (TOKEN-*).
    let token = PairingToken::new(
        [0x11; 32],
        [0x22; 16],
        [0x33; 32],
        1_900_000_000,
        "acme",
        "wss://relay.example.com/tether",
        Some("build-box".into()),
    )
    .unwrap()
    .to_text();
    g.throughput(Throughput::Bytes(token.len() as u64));
    g.bench_function("token-decode", |b| {
        b.iter(|| black_box(PairingToken::from_text(black_box(&token)).unwrap()))
    });

    // A DATA frame carrying a 1 KiB transport message (LINK-*).
    let frame = RelayFrame::Data {
        session: SessionId([9; 8]),
        payload: vec![0x5a; 1024 + 16],
    }
    .to_bytes()
    .unwrap();
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("relay-frame-decode", |b| {
        b.iter(|| black_box(RelayFrame::decode(black_box(&frame)).unwrap()))
    });

    // A command/exec request as the host receives it (CMD-1..CMD-10).
    let request = Message::Request(Request::new(
        42,
        "command/exec",
        Some(serde_json::json!({
            "command": ["cargo", "test", "--workspace", "--", "--nocapture"],
            "cwd": "/home/ana/src/tether",
            "processId": "p-42",
            "env": {"RUST_LOG": "debug", "CARGO_TERM_COLOR": "always"},
            "timeoutMs": 600000
        })),
    ))
    .to_bytes();
    g.throughput(Throughput::Bytes(request.len() as u64));
    g.bench_function("jsonrpc-decode", |b| {
        b.iter(|| black_box(Message::parse(black_box(&request)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
