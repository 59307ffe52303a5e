//! `tether host run|pair|devices|revoke` as real processes over 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_proto::token::PairingToken;

const BIN: &str = env!("CARGO_BIN_EXE_tether");
const CREDENTIAL: &str = "host-cli-test-credential";

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "tether-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `args`, waits (at most 20 s) for a stdout line starting with `prefix`.
fn start_until(args: &[&str], prefix: &str) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    let wanted = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&wanted) {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no line starting with {prefix:?} from {args:?}"));
    (proc, line)
}

fn tether(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn relay() -> (Proc, String) {
    let (p, line) = start_until(
        &[
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--workspace",
            &format!("acme={CREDENTIAL}"),
        ],
        "tether relay listening on ",
    );
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (p, url)
}

fn host(state: &Path, url: &str) -> (Proc, String) {
    start_until(
        &[
            "host",
            "run",
            "--state",
            state.to_str().unwrap(),
            "--relay",
            url,
            "--workspace",
            "acme",
            "--credential",
            CREDENTIAL,
            "--name",
            "build-box",
        ],
        "tether host ready: ",
    )
}

#[test]
fn host_pair_prints_a_token_for_this_host() {
    let tmp = TempDir::new("host-pair");
    let state = tmp.0.join("state");
    let (_relay, url) = relay();
    let (_host, ready) = host(&state, &url);
    assert!(ready.ends_with(&format!(" on {url}")), "{ready}");

    let png = tmp.0.join("token.png");
    let out = tether(&[
        "host",
        "pair",
        "--state",
        state.to_str().unwrap(),
        "--ttl",
        "120",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().next().unwrap();
    let token = PairingToken::from_text(line).unwrap();
    // The token names this host's key, its relay and workspace (TOKEN-1).
    let key_hex = std::fs::read_to_string(state.join("host.key")).unwrap();
    let private: [u8; 32] = hex_decode(key_hex.trim()).try_into().unwrap();
    assert_eq!(token.host_key(), &tether_proto::keys::public_key(&private));
    assert_eq!(token.relay_url(), url);
    assert_eq!(token.workspace(), "acme");
    assert_eq!(token.host_name(), Some("build-box"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // TOKEN-9
    assert!(token.expires_at() <= now + 120 && token.expires_at() + 10 >= now + 120);
    // The QR code went to stderr, in half blocks.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains('█') || stderr.contains('▀') || stderr.contains('▄'));
    // TOKEN-14: a PNG was written.
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // TOKEN-11: the secret is not stored.
    let state_json = std::fs::read_to_string(state.join("host.json")).unwrap();
    assert!(!state_json.contains(&hex_encode(token.token_secret())));
    assert!(state_json.contains(&hex_encode(token.token_id())));

    // TOKEN-9: more than 600 s is refused, with one line and exit 1.
    let out = tether(&["host", "pair", "--state", state.to_str().unwrap(), "--ttl", "601"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("TOKEN-9"), "{err}");
}

#[test]
fn host_devices_and_revoke() {
    let tmp = TempDir::new("host-devices");
    let state = tmp.0.join("state");
    let s = state.to_str().unwrap();
    // Before any run: pair names what to do.
    let out = tether(&["host", "pair", "--state", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tether host run"));

    let out = tether(&["host", "devices", "--state", s]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "no paired devices\n");

    // Two devices named alike, one other, as host.json records them.
    let keys = [[1u8; 32], [2u8; 32], [3u8; 32]];
    let names = ["phone", "phone", "laptop"];
    let devices: Vec<String> = keys
        .iter()
        .zip(names)
        .map(|(k, n)| {
            format!(
                r#"{{"key":"{}","name":"{n}","pairedAt":1700000000,"lastSeen":1700000100,"lastTimestamp":"400000006553f10000000000","revoked":false}}"#,
                hex_encode(k)
            )
        })
        .collect();
    let json = format!(
        r#"{{"version":1,"devices":[{}],"tokens":[],"config":{{"remoteAccess":true,"maxInactiveDays":null}}}}"#,
        devices.join(",")
    );
    std::fs::write(state.join("host.json"), json).unwrap();

    let out = tether(&["host", "devices", "--state", s]);
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let fp = tether_proto::keys::fingerprint(&keys[2]);
    assert!(listing.contains(&fp), "{listing}");
    assert!(listing.contains("paired 2023-11-14 22:13:20Z"), "{listing}");
    assert!(!listing.contains("revoked"));

    // Ambiguous: exit 1, one line naming both.
    let out = tether(&["host", "revoke", "--state", s, "phone"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&tether_proto::keys::fingerprint(&keys[0])), "{err}");
    assert!(err.contains(&tether_proto::keys::fingerprint(&keys[1])), "{err}");

    // By fingerprint prefix.
    let prefix = &tether_proto::keys::fingerprint(&keys[0])[..9];
    let out = tether(&["host", "revoke", "--state", s, prefix]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // By name.
    let out = tether(&["host", "revoke", "--state", s, "laptop"]);
    assert!(out.status.success());

    let listing = String::from_utf8(tether(&["host", "devices", "--state", s]).stdout).unwrap();
    assert_eq!(listing.matches("revoked").count(), 2, "{listing}");

    // A corrupt state file: one clear line, exit 1, file untouched.
    std::fs::write(state.join("host.json"), b"{\"version\":7}").unwrap();
    let out = tether(&["host", "devices", "--state", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 7"));
    assert_eq!(
        std::fs::read(state.join("host.json")).unwrap(),
        b"{\"version\":7}"
    );
}
