//! A TCP proxy on 127.0.0.1 that records every byte it forwards, both ways: put between
//! a client and a relay, it shows what the relay (or anyone on the path) sees, for tests
//! that check that no plaintext crosses it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// The most bytes a [`Tap`] keeps; what comes after is forwarded, not kept.
pub const MAX_SEEN: usize = 64 << 20;

/// A recording TCP proxy; runs (on its own threads) until the test process ends.
#[derive(Debug, Clone)]
pub struct Tap {
    /// Where clients connect: `127.0.0.1:PORT`.
    pub addr: String,
    /// Every byte forwarded so far, both directions interleaved.
    pub seen: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    /// A proxy to `target` (`HOST:PORT`).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
        let kept = seen.clone();
        let target = target.to_owned();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                for (from, to) in [(client2, server2), (server, client)] {
                    let kept = kept.clone();
                    thread::spawn(move || forward(from, to, &kept));
                }
            }
        });
        Self { addr, seen }
    }
}

fn forward(mut from: TcpStream, mut to: TcpStream, kept: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = buf.get(..n).unwrap_or_default();
                let mut seen = kept.lock().unwrap();
                if seen.len() < MAX_SEEN {
                    seen.extend_from_slice(chunk);
                }
                drop(seen);
                if to.write_all(chunk).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
