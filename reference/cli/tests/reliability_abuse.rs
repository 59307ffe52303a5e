//! Reliability under abuse (RELIABILITY.md): slow-loris links, floods of `OPEN`, oversize
//! and malformed frames, readers that stop reading, message-1 floods at the host and
//! connection floods from one address. Each test runs a real `tether relay` (and where it
//! matters `tether host run`) as a child process, attacks it over 127.0.0.1, checks that
//! the limit holds and that others are still served, and prints its figures (`FIGURE`
//! lines, visible with `--nocapture`). Every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

mod reliability_util;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reliability_util::*;
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tether_relay::client::{self, ClientLink};
use tether_testkit::inproc::{controller_hello, hello, register_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    tether_host::state::random_bytes::<N>().unwrap()
}

fn addr_of(relay: &Relay) -> SocketAddr {
    relay.addr.parse().unwrap()
}

/// A WebSocket to the relay from `source` (an address of 127.0.0.0/8), with a small
/// receive buffer when asked (so that a reader that stops reading is felt at the relay
/// at once rather than after the kernel's buffers).
async fn ws_from(
    relay: SocketAddr,
    source: &str,
    rcvbuf: Option<u32>,
) -> Result<ClientLink, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(format!("{source}:0").parse().unwrap())
        .map_err(|e| e.to_string())?;
    if let Some(size) = rcvbuf {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| e.to_string())?;
    }
    let tcp = socket.connect(relay).await.map_err(|e| e.to_string())?;
    let io: Box<dyn client::LinkIo> = Box::new(tcp);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{relay}/"),
        io,
        Some(client::websocket_config(
            tether_proto::limits::MAX_FRAME_LEN,
        )),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn recv(link: &mut ClientLink, within: Duration) -> Option<RelayFrame> {
    tokio::time::timeout(within, client::recv_frame(link))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
}

async fn controller_on(link: Result<ClientLink, String>) -> Result<ClientLink, String> {
    let mut link = link?;
    controller_hello(&mut link, "acme", CRED.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok(link)
}

async fn controller(relay: SocketAddr) -> ClientLink {
    controller_on(ws_from(relay, "127.0.0.1", None).await)
        .await
        .unwrap()
}

/// A registered host link (`LINK-12`) with a fresh key; returns the link and its public
/// key.
async fn host(relay: SocketAddr, rcvbuf: Option<u32>) -> (ClientLink, [u8; 32]) {
    let private = rand_bytes::<32>();
    let mut link = ws_from(relay, "127.0.0.1", rcvbuf).await.unwrap();
    register_host(&mut link, &private, "acme", CRED.as_bytes())
        .await
        .unwrap();
    (link, tether_proto::keys::public_key(&private))
}

/// Reads until a `GOAWAY` (its code) or the end of the link (`None`).
async fn goaway(link: &mut ClientLink, within: Duration) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, client::recv_frame(link)).await {
            Ok(Ok(Some(RelayFrame::GoAway { code, .. }))) => return Some(code),
            Ok(Ok(Some(_))) => {}
            _ => return None,
        }
    }
}

/// An echoing session: a host that sends every `DATA` back, and a controller that sends
/// `n` numbered messages one after the other and checks each echo. Returns the round-trip
/// times; panics on a lost, changed or misplaced message.
async fn echo_session(relay: SocketAddr, n: usize, pause: Duration) -> Vec<Duration> {
    let (mut h, key) = host(relay, None).await;
    let echo = tokio::spawn(async move {
        while let Ok(Some(frame)) = client::recv_frame(&mut h).await {
            if let RelayFrame::Data { session, payload } = frame
                && client::send_frame(&mut h, &RelayFrame::Data { session, payload })
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    let mut c = controller(relay).await;
    let id = SessionId(rand_bytes::<8>());
    client::send_frame(
        &mut c,
        &RelayFrame::Open {
            session: id,
            host_key: key,
            handshake: vec![1; 32],
        },
    )
    .await
    .unwrap();
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n {
        let payload = format!("echo {i} {}", "x".repeat(i % 700)).into_bytes();
        let t = Instant::now();
        client::send_frame(
            &mut c,
            &RelayFrame::Data {
                session: id,
                payload: payload.clone(),
            },
        )
        .await
        .unwrap();
        match recv(&mut c, LIMIT).await {
            Some(RelayFrame::Data {
                session,
                payload: p,
            }) => {
                assert_eq!(session, id);
                assert_eq!(p, payload, "echo {i} intact");
            }
            other => panic!("echo {i}: {other:?}"),
        }
        rtts.push(t.elapsed());
        tokio::time::sleep(pause).await;
    }
    echo.abort();
    rtts
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------

/// LINK-7: links that never authenticate — silent TCP, a dripped HTTP upgrade, a silent
/// WebSocket, a dripped HELLO — are all closed at the 10 s auth deadline, while a real
/// client still connects at once.
#[test]
fn slow_loris_links_are_closed_at_the_auth_deadline() {
    let relay = start_relay("127.0.0.1:0", &["--max-links-per-address", "0"]);
    let addr = addr_of(&relay);
    let rss_before = relay.rss_kib();
    const EACH: usize = 50;
    let rt = runtime();
    let (closed_after, legit, rss_during) = rt.block_on(async {
        let mut tasks = Vec::new();
        for kind in 0..4 {
            for _ in 0..EACH {
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let mut tcp = TcpStream::connect(addr).await.unwrap();
                    let request = format!(
                        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Sec-WebSocket-Version: 13\r\n\r\n"
                    );
                    let mut buf = vec![0u8; 4096];
                    match kind {
                        // Silent TCP.
                        0 => {}
                        // The HTTP upgrade, one byte every 300 ms.
                        1 => {
                            for b in request.bytes() {
                                if tcp.write_all(&[b]).await.is_err() {
                                    break;
                                }
                                tokio::select! {
                                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                                    n = tcp.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) {
                                        return (kind, t.elapsed());
                                    },
                                }
                            }
                        }
                        // A WebSocket that never sends HELLO, or drips one (a binary
                        // frame header announcing 45 bytes, then a byte every 300 ms).
                        _ => {
                            tcp.write_all(request.as_bytes()).await.unwrap();
                            let mut got = Vec::new();
                            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                                let n = tcp.read(&mut buf).await.unwrap();
                                assert!(n > 0, "upgrade refused");
                                got.extend_from_slice(&buf[..n]);
                            }
                            if kind == 3 {
                                tcp.write_all(&[0x82, 0x80 | 45, 1, 2, 3, 4]).await.unwrap();
                                for _ in 0..45 {
                                    if tcp.write_all(&[0]).await.is_err() {
                                        break;
                                    }
                                    tokio::select! {
                                        () = tokio::time::sleep(Duration::from_millis(300)) => {}
                                        n = tcp.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) {
                                            return (kind, t.elapsed());
                                        },
                                    }
                                }
                            }
                        }
                    }
                    // Wait for the relay to close the connection (reading what it sends:
                    // the GOAWAY AUTH_TIMEOUT of a WebSocket).
                    let deadline = Duration::from_secs(30);
                    let _ = tokio::time::timeout(deadline, async {
                        loop {
                            match tcp.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                    })
                    .await;
                    (kind, t.elapsed())
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_during = relay.rss_kib();
        let t = Instant::now();
        let link = controller(addr).await;
        let legit = t.elapsed();
        drop(link);
        let mut closed_after: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
        for task in tasks {
            let (kind, after) = task.await.unwrap();
            closed_after.entry(kind).or_default().push(after);
        }
        (closed_after, legit, rss_during)
    });
    let names = [
        "silent TCP",
        "dripped HTTP upgrade",
        "silent WebSocket",
        "dripped HELLO",
    ];
    for (kind, mut times) in closed_after {
        let max = percentile(&mut times, 1.0);
        let min = percentile(&mut times, 0.0);
        figure(
            &format!("slow-loris {} x{EACH}: closed after", names[kind]),
            format!("{:.2}..{:.2} s", min.as_secs_f64(), max.as_secs_f64()),
        );
        // Closed by the deadline, not before it and not much after.
        assert!(min >= Duration::from_secs(9), "{}: {min:?}", names[kind]);
        assert!(max <= Duration::from_secs(20), "{}: {max:?}", names[kind]);
    }
    // The WebSocket ones got GOAWAY AUTH_TIMEOUT (the relay logs each close).
    assert!(
        relay.wait_log("AUTH_TIMEOUT", 2 * EACH, Duration::from_secs(5)),
        "{} GOAWAY AUTH_TIMEOUT logged",
        relay
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("AUTH_TIMEOUT"))
            .count()
    );
    figure(
        "slow-loris: real controller READY during the attack",
        ms(legit),
    );
    figure(
        "slow-loris: relay RSS before / during (200 links)",
        format!("{rss_before} / {rss_during} KiB"),
    );
    assert!(legit < Duration::from_secs(5));
}

/// One controller link sends `n` `OPEN`s for `host_key` as fast as it can and counts the
/// `CLOSE` codes of the answers (`expect` of them).
async fn open_flood(
    addr: SocketAddr,
    host_key: [u8; 32],
    n: usize,
    expect: usize,
) -> (BTreeMap<u16, usize>, Duration) {
    let c = controller(addr).await;
    let (mut sink, mut stream) = c.split();
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            let frame = RelayFrame::Open {
                session: SessionId((i as u64).to_be_bytes()),
                host_key,
                handshake: vec![7; 100],
            };
            sink.send(Message::Binary(frame.to_bytes().unwrap().into()))
                .await
                .unwrap();
        }
        sink
    });
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut answered = 0;
    while answered < expect {
        let Some(Ok(Message::Binary(b))) =
            tokio::time::timeout(LIMIT, stream.next()).await.unwrap()
        else {
            panic!("flood link ended after {answered} answers");
        };
        if let Ok(RelayFrame::Close { code, .. }) = RelayFrame::decode(&b) {
            *codes.entry(code.0).or_default() += 1;
            answered += 1;
        }
    }
    let took = t.elapsed();
    let _ = sender.await;
    (codes, took)
}

/// LINK-17, LINK-20: controllers flood `OPEN` — one at a key no host has, one at a real
/// host far beyond the session limit. Every `OPEN` is answered with the right `CLOSE`, the
/// host sees only the sessions the limit allows, and an echoing session through the same
/// relay loses nothing meanwhile.
#[test]
fn open_flood_is_answered_and_others_are_served() {
    let relay = start_relay("127.0.0.1:0", &[]);
    let addr = addr_of(&relay);
    const FLOOD: usize = 10_000;
    let rt = runtime();
    rt.block_on(async {
        let mut before = echo_session(addr, 50, Duration::ZERO).await;
        let (mut target, target_key) = host(addr, None).await;
        let unknown = tokio::spawn(open_flood(addr, [9u8; 32], FLOOD, FLOOD));
        let limited = tokio::spawn(open_flood(addr, target_key, FLOOD, FLOOD - 16));
        // The target host sees exactly the 16 sessions the controller link may hold.
        let mut incoming = 0;
        while incoming < 16 {
            match recv(&mut target, LIMIT).await {
                Some(RelayFrame::Incoming { .. }) => incoming += 1,
                Some(_) => {}
                None => panic!("target host link ended"),
            }
        }
        let mut during = echo_session(addr, 200, Duration::ZERO).await;
        let (codes_u, took_u) = unknown.await.unwrap();
        let (codes_l, took_l) = limited.await.unwrap();
        assert_eq!(
            codes_u.get(&16),
            Some(&FLOOD),
            "HOST_UNREACHABLE: {codes_u:?}"
        );
        assert_eq!(codes_u.len(), 1, "{codes_u:?}");
        assert_eq!(
            codes_l.get(&17),
            Some(&(FLOOD - 16)),
            "SESSION_LIMIT: {codes_l:?}"
        );
        assert_eq!(codes_l.len(), 1, "{codes_l:?}");
        // No 17th INCOMING (the flood links' end closes the 16 sessions: PEER_GONE).
        while let Some(frame) = recv(&mut target, Duration::from_millis(300)).await {
            assert!(
                matches!(
                    frame,
                    RelayFrame::Close {
                        code: CloseCode::PEER_GONE,
                        ..
                    }
                ),
                "{frame:?}"
            );
        }
        let took = took_u.max(took_l);
        figure(
            "OPEN flood: OPENs answered (2 links)",
            format!(
                "{} in {:.2} s ({:.0}/s)",
                2 * FLOOD - 16,
                took.as_secs_f64(),
                (2 * FLOOD - 16) as f64 / took.as_secs_f64()
            ),
        );
        figure(
            "OPEN flood: echo RTT p50/max before",
            format!(
                "{} / {}",
                ms(percentile(&mut before, 0.5)),
                ms(percentile(&mut before, 1.0))
            ),
        );
        figure(
            "OPEN flood: echo RTT p50/max during (200 echoes, none lost)",
            format!(
                "{} / {}",
                ms(percentile(&mut during, 0.5)),
                ms(percentile(&mut during, 1.0))
            ),
        );
    });
}

/// LINK-1, LINK-3, LINK-4, LINK-5, LINK-6, LINK-8, LINK-10: oversize and malformed frames
/// each close the sender's link with the right `GOAWAY`; an echoing session through the
/// same relay loses nothing meanwhile.
#[test]
fn oversize_and_malformed_frames_close_only_their_link() {
    let relay = start_relay("127.0.0.1:0", &["--max-links-per-address", "0"]);
    let addr = addr_of(&relay);
    const EACH: usize = 20;
    let rt = runtime();
    rt.block_on(async {
        let echo = tokio::spawn(echo_session(addr, 300, Duration::from_millis(5)));
        let mut data8 = vec![0x12];
        data8.extend_from_slice(&[1; 8]);
        let hello_bytes = hello(Role::Controller, "acme", CRED.as_bytes(), Vec::new())
            .to_bytes()
            .unwrap();
        // (name, authenticate first, message, expected GOAWAY code)
        let cases: Vec<(&str, bool, Message, CloseCode)> = vec![
            (
                "513 bytes before READY",
                false,
                Message::Binary(vec![0x01; 513].into()),
                CloseCode::FRAME_TOO_LARGE,
            ),
            (
                "65545 bytes",
                true,
                Message::Binary(vec![0x12; 65_545].into()),
                CloseCode::FRAME_TOO_LARGE,
            ),
            (
                "unknown type",
                true,
                Message::Binary(vec![0x40].into()),
                CloseCode::PROTOCOL_ERROR,
            ),
            (
                "truncated DATA",
                true,
                Message::Binary(vec![0x12, 1, 2, 3].into()),
                CloseCode::PROTOCOL_ERROR,
            ),
            (
                "empty DATA payload",
                true,
                Message::Binary(data8.clone().into()),
                CloseCode::PROTOCOL_ERROR,
            ),
            (
                "text message",
                true,
                Message::Text("hello".into()),
                CloseCode::PROTOCOL_ERROR,
            ),
            (
                "HELLO version 2",
                false,
                Message::Binary({
                    let mut h = hello_bytes.clone();
                    h[1] = 2;
                    h.into()
                }),
                CloseCode::UNSUPPORTED_VERSION,
            ),
            (
                "second HELLO",
                true,
                Message::Binary(hello_bytes.clone().into()),
                CloseCode::UNEXPECTED_FRAME,
            ),
            (
                "DATA before HELLO",
                false,
                Message::Binary({
                    let mut d = data8.clone();
                    d.push(1);
                    d.into()
                }),
                CloseCode::UNEXPECTED_FRAME,
            ),
            (
                "wrong credential",
                false,
                Message::Binary(
                    hello(
                        Role::Controller,
                        "acme",
                        b"not-the-credential-000",
                        Vec::new(),
                    )
                    .to_bytes()
                    .unwrap()
                    .into(),
                ),
                CloseCode::AUTH_FAILED,
            ),
        ];
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (name, auth, message, want) in cases {
            for _ in 0..EACH {
                let message = message.clone();
                tasks.push(tokio::spawn(async move {
                    let mut link = if auth {
                        controller(addr).await
                    } else {
                        ws_from(addr, "127.0.0.1", None).await.unwrap()
                    };
                    let _ = link.send(message).await;
                    (name, want, goaway(&mut link, LIMIT).await)
                }));
            }
        }
        let mut bad = Vec::new();
        for task in tasks {
            let (name, want, got) = task.await.unwrap();
            if got != Some(want) {
                bad.push(format!("{name}: want {want}, got {got:?}"));
            }
        }
        let took = t.elapsed();
        assert!(bad.is_empty(), "{bad:#?}");
        let mut rtts = echo.await.unwrap();
        figure(
            "malformed/oversize: abusive links closed with the right code",
            format!("{} in {:.2} s", 10 * EACH, took.as_secs_f64()),
        );
        figure(
            "malformed/oversize: echo session meanwhile (300 echoes, none lost) RTT p50/max",
            format!(
                "{} / {}",
                ms(percentile(&mut rtts, 0.5)),
                ms(percentile(&mut rtts, 1.0))
            ),
        );
    });
}

/// How many readers stall in the memory tests (`TETHER_STALLED_READERS`, default 32, at
/// most 64).
fn stalled_readers() -> usize {
    std::env::var("TETHER_STALLED_READERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
        .clamp(1, 64) // one host link holds at most 64 sessions (LINK-20)
}

/// Bytes each sender offers a stalled reader: far more than any bound.
const OFFERED_PER_SESSION: usize = 16 << 20;

/// A fresh relay, its resident memory before, and its peak after `phase`.
fn measure_relay<T>(phase: impl FnOnce(SocketAddr) -> T) -> (T, u64, u64) {
    let relay = start_relay("127.0.0.1:0", &["--max-links-per-address", "0"]);
    let before = relay.rss_kib();
    let out = phase(addr_of(&relay));
    (out, before, relay.hwm_kib())
}

/// LINK-22: controllers stop reading while a host sends each of them far more than the
/// bound; every session is closed with `SLOW_READER` and the relay's memory stays
/// bounded.
#[test]
fn stalled_controllers_cost_bounded_relay_memory() {
    let n = stalled_readers();
    let rt = runtime();
    let ((sent, took), before, peak) = measure_relay(|addr| {
        rt.block_on(async {
            let (h, key) = host(addr, None).await;
            let (mut hsink, mut hstream) = h.split();
            let mut stalled = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..n {
                let mut c = controller_on(ws_from(addr, "127.0.0.1", Some(4096)).await)
                    .await
                    .unwrap();
                let id = SessionId(rand_bytes::<8>());
                client::send_frame(
                    &mut c,
                    &RelayFrame::Open {
                        session: id,
                        host_key: key,
                        handshake: vec![1; 32],
                    },
                )
                .await
                .unwrap();
                ids.push(id);
                stalled.push(c); // never read again
            }
            let closed: Arc<std::sync::Mutex<BTreeMap<[u8; 8], CloseCode>>> = Arc::default();
            let closed2 = closed.clone();
            let reader = tokio::spawn(async move {
                let mut incoming = 0;
                while let Some(Ok(Message::Binary(b))) = hstream.next().await {
                    match RelayFrame::decode(&b) {
                        Ok(RelayFrame::Incoming { .. }) => incoming += 1,
                        Ok(RelayFrame::Close { session, code }) => {
                            closed2.lock().unwrap().insert(session.0, code);
                        }
                        _ => {}
                    }
                    if closed2.lock().unwrap().len() == n {
                        break;
                    }
                }
                incoming
            });
            let t = Instant::now();
            let chunk = vec![0xabu8; 65_535];
            let mut sent = 0usize;
            'outer: for _round in 0..OFFERED_PER_SESSION / chunk.len() {
                let mut any = false;
                for id in &ids {
                    if closed.lock().unwrap().contains_key(&id.0) {
                        continue;
                    }
                    any = true;
                    let frame = RelayFrame::Data {
                        session: *id,
                        payload: chunk.clone(),
                    };
                    if hsink
                        .send(Message::Binary(frame.to_bytes().unwrap().into()))
                        .await
                        .is_err()
                    {
                        break 'outer;
                    }
                    sent += chunk.len();
                }
                if !any {
                    break;
                }
            }
            let incoming = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
            assert_eq!(incoming, n);
            let codes = closed.lock().unwrap().clone();
            assert_eq!(codes.len(), n, "every session closed");
            assert!(
                codes.values().all(|c| *c == CloseCode::SLOW_READER),
                "{codes:?}"
            );
            drop(stalled);
            (sent, t.elapsed())
        })
    });
    let growth = peak.saturating_sub(before);
    figure(
        &format!("stalled controllers x{n}: sessions closed SLOW_READER"),
        format!(
            "{n}/{n}; the host got {} MiB into the relay in {:.2} s",
            sent >> 20,
            took.as_secs_f64()
        ),
    );
    figure(
        &format!("stalled controllers x{n}: relay RSS before / peak"),
        format!(
            "{before} / {peak} KiB (+{growth} KiB, {} KiB per stalled reader)",
            growth / n as u64
        ),
    );
    check_bound(growth, n);
}

/// The relay's memory bound for `n` stalled readers: a fixed part — its input queue, shared
/// by every link and bounded in frames (64 of up to 64 KiB: 4 MiB), and allocator slack — plus,
/// per stalled link, the core's queue (256 KiB per session, LINK-22), its writer's 8
/// frames and the WebSocket's buffers. Unbounded queues would hold what was offered
/// (16 MiB per reader).
fn check_bound(growth_kib: u64, n: usize) {
    let n = n as u64;
    let bound = 24 * 1024 + n * 2048;
    assert!(
        growth_kib < bound,
        "relay grew {growth_kib} KiB > {bound} KiB for {n} stalled readers"
    );
}

/// LINK-23: a host stops reading while controllers send to it far more than the bound;
/// its link is closed (its sessions end `PEER_GONE` or `SLOW_READER` at the controllers)
/// and the relay's memory stays bounded.
#[test]
fn stalled_host_costs_bounded_relay_memory() {
    let n = stalled_readers();
    let rt = runtime();
    let ((sent, took, codes), before, peak) = measure_relay(|addr| {
        rt.block_on(async {
            let (mut h2, key2) = host(addr, Some(4096)).await;
            let mut writers = Vec::new();
            let mut ids2 = Vec::new();
            for _ in 0..n {
                let mut c = controller(addr).await;
                let id = SessionId(rand_bytes::<8>());
                client::send_frame(
                    &mut c,
                    &RelayFrame::Open {
                        session: id,
                        host_key: key2,
                        handshake: vec![1; 32],
                    },
                )
                .await
                .unwrap();
                ids2.push(id);
                writers.push(c);
            }
            let mut incoming = 0;
            while incoming < n {
                match recv(&mut h2, LIMIT).await {
                    Some(RelayFrame::Incoming { .. }) => incoming += 1,
                    Some(_) => {}
                    None => panic!("the host link ended after {incoming} INCOMING"),
                }
            }
            // From here the host reads nothing.
            let t = Instant::now();
            let sent2 = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for (c, id) in writers.into_iter().zip(ids2) {
                let sent2 = sent2.clone();
                tasks.push(tokio::spawn(async move {
                    let (mut sink, mut stream) = c.split();
                    let chunk = vec![0xcdu8; 65_535];
                    let send = async {
                        for _ in 0..OFFERED_PER_SESSION / chunk.len() {
                            let frame = RelayFrame::Data {
                                session: id,
                                payload: chunk.clone(),
                            };
                            if sink
                                .send(Message::Binary(frame.to_bytes().unwrap().into()))
                                .await
                                .is_err()
                            {
                                break;
                            }
                            sent2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        std::future::pending::<()>().await;
                    };
                    let until_close = async {
                        while let Some(Ok(Message::Binary(b))) = stream.next().await {
                            if let Ok(RelayFrame::Close { code, .. }) = RelayFrame::decode(&b) {
                                return Some(code);
                            }
                        }
                        None
                    };
                    tokio::select! {
                        () = send => None,
                        code = tokio::time::timeout(LIMIT, until_close) => code.ok().flatten(),
                    }
                }));
            }
            let mut codes = Vec::new();
            for task in tasks {
                codes.push(task.await.unwrap());
            }
            drop(h2);
            (sent2.load(Ordering::Relaxed) as usize, t.elapsed(), codes)
        })
    });
    assert!(
        codes
            .iter()
            .all(|c| *c == Some(CloseCode::PEER_GONE) || *c == Some(CloseCode::SLOW_READER)),
        "{codes:?}"
    );
    let growth = peak.saturating_sub(before);
    let peer_gone = codes
        .iter()
        .filter(|c| **c == Some(CloseCode::PEER_GONE))
        .count();
    figure(
        &format!("stalled host, {n} sending controllers: sessions ended PEER_GONE / SLOW_READER"),
        format!(
            "{peer_gone} / {}; controllers got {} MiB into the relay in {:.2} s",
            n - peer_gone,
            sent >> 20,
            took.as_secs_f64()
        ),
    );
    figure(
        &format!("stalled host, {n} sending controllers: relay RSS before / peak"),
        format!("{before} / {peak} KiB (+{growth} KiB)"),
    );
    check_bound(growth, n);
}

/// CHAN-14: unpaired keys flood a real `tether host run` with genuine message 1s. The host
/// does Diffie-Hellman work for at most 100 + 50/s of them and refuses the rest with
/// `RATE_LIMITED` before any DH; its CPU use is measured.
#[test]
fn message1_flood_is_rate_limited_by_the_host() {
    use tether_proto::channel::Timestamp;
    use tether_proto::session::{Controller, ControllerConfig, Purpose};
    use tether_proto::time::UnixTime;

    let relay = start_relay("127.0.0.1:0", &[]);
    let addr = addr_of(&relay);
    let hs = TempDir::new("host");
    let host_proc = start_host(&hs.0, &relay.url, None);
    assert!(relay.wait_log("host registered", 1, LIMIT));
    let state = tether_host::state::StateDir::open(&hs.0).unwrap();
    let host_key = tether_proto::keys::public_key(&state.read_key().unwrap());
    const LINKS: usize = 4;
    const FLOOD: Duration = Duration::from_secs(5);
    let rt = runtime();
    let cpu_before = cpu_time(host_proc.pid());
    let t = Instant::now();
    let codes = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..LINKS {
            tasks.push(tokio::spawn(async move {
                let link = controller(addr).await;
                let (mut sink, mut stream) = link.split();
                let mut codes: BTreeMap<u16, u64> = BTreeMap::new();
                let mut in_flight = 0usize;
                let end = tokio::time::Instant::now() + FLOOD;
                loop {
                    let sending = tokio::time::Instant::now() < end;
                    if sending && in_flight < 16 {
                        let config = ControllerConfig {
                            static_private: rand_bytes::<32>(),
                            host_key,
                            workspace: "acme".into(),
                            session: SessionId(rand_bytes::<8>()),
                            timestamp: Timestamp::from_unix(UnixTime::now()),
                            purpose: Purpose::Resume,
                            handshake_timeout: Duration::from_secs(15),
                        };
                        let mut c = Controller::connect(config, Instant::now()).unwrap();
                        let open = c.poll_transmit().unwrap();
                        sink.send(Message::Binary(open.to_bytes().unwrap().into()))
                            .await
                            .unwrap();
                        in_flight += 1;
                        continue;
                    }
                    if !sending && in_flight == 0 {
                        break;
                    }
                    let Ok(Some(Ok(Message::Binary(b)))) =
                        tokio::time::timeout(LIMIT, stream.next()).await
                    else {
                        panic!("flood link ended");
                    };
                    if let Ok(RelayFrame::Close { code, .. }) = RelayFrame::decode(&b) {
                        *codes.entry(code.0).or_default() += 1;
                        in_flight -= 1;
                    }
                }
                codes
            }));
        }
        let mut all: BTreeMap<u16, u64> = BTreeMap::new();
        for task in tasks {
            for (k, v) in task.await.unwrap() {
                *all.entry(k).or_default() += v;
            }
        }
        all
    });
    let elapsed = t.elapsed();
    let cpu = cpu_time(host_proc.pid()).saturating_sub(cpu_before);
    let processed = codes.get(&32).copied().unwrap_or(0); // NOT_AUTHORIZED: after DH
    let limited = codes.get(&37).copied().unwrap_or(0); // RATE_LIMITED: before DH
    let total: u64 = codes.values().sum();
    assert_eq!(
        processed + limited,
        total,
        "only these two answers: {codes:?}"
    );
    let bound = 100 + (50.0 * elapsed.as_secs_f64()).ceil() as u64 + 5;
    assert!(
        processed <= bound,
        "{processed} handshakes processed > {bound}"
    );
    assert!(processed >= 100, "the burst is served: {codes:?}");
    assert!(
        limited > processed,
        "the flood outran the bucket: {codes:?}"
    );
    figure(
        "message-1 flood: attempts / processed (NOT_AUTHORIZED) / dropped (RATE_LIMITED)",
        format!(
            "{total} / {processed} / {limited} in {:.2} s (bound {bound})",
            elapsed.as_secs_f64()
        ),
    );
    figure(
        "message-1 flood: host CPU",
        format!(
            "{:.2} s in {:.2} s ({:.0}% of one core)",
            cpu.as_secs_f64(),
            elapsed.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
        ),
    );
}

/// SEC-17: a relay bounds the links open at once from one client address
/// (`--max-links-per-address`). Extra connections are closed on accept; other addresses
/// are unaffected; a closed link frees its slot.
#[test]
fn connection_flood_from_one_address_is_bounded() {
    let relay = start_relay("127.0.0.1:0", &["--max-links-per-address", "32"]);
    let addr = addr_of(&relay);
    const FLOOD: usize = 200;
    let rt = runtime();
    rt.block_on(async {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..FLOOD {
            tasks.push(tokio::spawn(async move {
                controller_on(ws_from(addr, "127.0.0.1", None).await).await
            }));
        }
        let mut ready = Vec::new();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(link) => ready.push(link),
                Err(_) => refused += 1,
            }
        }
        let took = t.elapsed();
        assert_eq!(ready.len(), 32, "exactly the bound reached READY");
        assert_eq!(refused, FLOOD - 32);
        // Another address is served.
        let other = controller_on(ws_from(addr, "127.0.0.2", None).await).await;
        assert!(other.is_ok(), "{:?}", other.err());
        // Closing links frees their slots.
        for mut link in ready.drain(..8) {
            let _ = link.close(None).await;
        }
        let mut again = 0;
        let deadline = Instant::now() + LIMIT;
        while again < 8 && Instant::now() < deadline {
            if let Ok(link) = controller_on(ws_from(addr, "127.0.0.1", None).await).await {
                ready.push(link);
                again += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(again, 8);
        assert!(controller_on(ws_from(addr, "127.0.0.1", None).await).await.is_err());
        figure(
            "connection flood from one address (bound 32)",
            format!("{} READY, {refused} refused of {FLOOD} in {:.2} s; 127.0.0.2 served; freed slots reused", 32, took.as_secs_f64()),
        );
    });
}
