//! `tether host run|pair|devices|revoke` as real processes over 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_proto::token::PairingToken;
use tether_testkit::cli::{HOST_READY, Relay, Tether};
use tether_testkit::dirs::{TempDir, beside, write_private};
use tether_testkit::proc::{Output, Proc, run, start_until};

const TETHER: Tether = Tether::new(env!("CARGO_BIN_EXE_tether"));
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

/// `tether` without the environment the tests control.
fn bin() -> Command {
    TETHER.command()
}

fn tether(args: &[&str]) -> Output {
    TETHER.run(args)
}

/// `tether relay` on 127.0.0.1 with workspace acme; its URL as the relay prints it.
fn relay() -> (Relay, String) {
    let relay = Relay::start(TETHER.relay_command("127.0.0.1:0", &[("acme", CREDENTIAL)]));
    let url = relay.url.trim_end_matches('/').to_owned();
    (relay, url)
}

/// `tether host run` on `state` with the credential in `STATE-credential` (mode 0600,
/// SEC-23) and the commands' temporary directory `STATE-tmp`, both beside the state
/// directory (SEC-22), and `extra` arguments; not started.
fn host_cmd(state: &Path, url: &str, extra: &[&str]) -> Command {
    let name = state.file_name().unwrap().to_str().unwrap();
    let credential = state.with_file_name(format!("{name}-credential"));
    write_private(&credential, &format!("{CREDENTIAL}\n"));
    let tmp = beside(state, "tmp");
    let mut c = bin();
    c.env("TMPDIR", &tmp)
        .stderr(Stdio::null())
        .args(["host", "run", "--state"])
        .arg(state)
        .args(["--relay", url, "--workspace", "acme", "--credential-file"])
        .arg(&credential)
        .args(["--name", "build-box"])
        .args(extra);
    c
}

fn host(state: &Path, url: &str) -> (Proc, String) {
    start_cmd_until(host_cmd(state, url, &[]), HOST_READY)
}

/// Starts `cmd`, waits (at most 20 s) for a stdout line starting with `prefix`.
fn start_cmd_until(cmd: Command, prefix: &str) -> (Proc, String) {
    start_until(cmd, prefix, Duration::from_secs(20))
}

/// The command line of a running process, arguments joined by spaces.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Runs `cmd` to its end (at most 20 s) and returns its exit code and stderr.
fn refused(cmd: Command) -> (Option<i32>, String) {
    let out = run(cmd, Duration::from_secs(20));
    (out.code(), out.stderr)
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
    assert!(out.status.success(), "{}", out.stderr);
    let stdout = out.stdout;
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
    let stderr = out.stderr;
    assert!(stderr.contains('█') || stderr.contains('▀') || stderr.contains('▄'));
    // TOKEN-14: a PNG was written.
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // TOKEN-11: the secret is not stored.
    let state_json = std::fs::read_to_string(state.join("host.json")).unwrap();
    assert!(!state_json.contains(&hex_encode(token.token_secret())));
    assert!(state_json.contains(&hex_encode(token.token_id())));

    // TOKEN-9: more than 600 s is refused, with one line and exit 1.
    let out = tether(&[
        "host",
        "pair",
        "--state",
        state.to_str().unwrap(),
        "--ttl",
        "601",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr;
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
    assert!(out.stderr.contains("tether host run"));

    let out = tether(&["host", "devices", "--state", s]);
    assert!(out.status.success());
    assert_eq!(out.stdout, "no paired devices\n");

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
    let listing = out.stdout;
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let fp = tether_proto::keys::fingerprint(&keys[2]);
    assert!(listing.contains(&fp), "{listing}");
    assert!(listing.contains("paired 2023-11-14 22:13:20Z"), "{listing}");
    assert!(!listing.contains("revoked"));

    // Ambiguous: exit 1, one line naming both.
    let out = tether(&["host", "revoke", "--state", s, "phone"]);
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&tether_proto::keys::fingerprint(&keys[0])),
        "{err}"
    );
    assert!(
        err.contains(&tether_proto::keys::fingerprint(&keys[1])),
        "{err}"
    );

    // By fingerprint prefix.
    let prefix = &tether_proto::keys::fingerprint(&keys[0])[..9];
    let out = tether(&["host", "revoke", "--state", s, prefix]);
    assert!(out.status.success(), "{}", out.stderr);
    // By name.
    let out = tether(&["host", "revoke", "--state", s, "laptop"]);
    assert!(out.status.success());

    let listing = tether(&["host", "devices", "--state", s]).stdout;
    assert_eq!(listing.matches("revoked").count(), 2, "{listing}");

    // A corrupt state file: one clear line, exit 1, file untouched.
    std::fs::write(state.join("host.json"), b"{\"version\":7}").unwrap();
    let out = tether(&["host", "devices", "--state", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("version 7"));
    assert_eq!(
        std::fs::read(state.join("host.json")).unwrap(),
        b"{\"version\":7}"
    );
}

/// SEC-23: the workspace credential is never on the host's command line: `--credential`
/// is refused with a pointer to `--credential-file`, as is a credential file other
/// accounts can read; the host runs with the credential from a file or from
/// `TETHER_CREDENTIAL`, and its command line (`/proc/PID/cmdline`) does not hold it.
#[test]
fn sec_23_credential_never_on_the_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("host-credential");
    let state = tmp.0.join("state");
    let (_relay, url) = relay();

    // --credential: refused before anything is created.
    let (code, err) = refused(host_cmd(&state, &url, &["--credential", CREDENTIAL]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--credential-file"), "{err}");
    assert!(err.contains("SEC-23"), "{err}");
    assert!(
        !err.contains(CREDENTIAL),
        "the refusal repeats the credential: {err}"
    );
    assert!(!state.exists());

    // Neither a file nor the variable.
    let mut c = bin();
    c.env("TMPDIR", tmp.0.join("state-tmp"))
        .args(["host", "run", "--state"])
        .arg(&state)
        .args(["--relay", &url, "--workspace", "acme"]);
    let (code, err) = refused(c);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TETHER_CREDENTIAL"), "{err}");

    // A credential file other accounts can read.
    let c = host_cmd(&state, &url, &[]);
    let file = tmp.0.join("state-credential");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = refused(c);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("chmod 600"), "{err}");

    // From the file (mode 0600).
    let (mut from_file, _) = host(&state, &url);
    let line = cmdline(from_file.pid());
    assert!(line.contains("--credential-file"), "{line}");
    assert!(!line.contains(CREDENTIAL), "{line}");
    from_file.kill();

    // From the environment.
    let mut c = bin();
    c.env("TMPDIR", tmp.0.join("state-tmp"))
        .env("TETHER_CREDENTIAL", CREDENTIAL)
        .stderr(Stdio::null())
        .args(["host", "run", "--state"])
        .arg(&state)
        .args([
            "--relay",
            &url,
            "--workspace",
            "acme",
            "--name",
            "build-box",
        ]);
    let (from_env, ready) = start_cmd_until(c, HOST_READY);
    assert!(ready.ends_with(&format!(" on {url}")), "{ready}");
    assert!(!cmdline(from_env.pid()).contains(CREDENTIAL));
}

/// SEC-22: the state directory is its owner's alone and lies outside every directory the
/// host's commands may write: inside (or around) their temporary directory, or inside the
/// default project (given with --project, or the current directory's), the host refuses
/// to start and writes nothing; one others may write is refused, one others may only read
/// is tightened to 0700.
#[test]
fn sec_22_state_directory_placement_and_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("host-placement");
    let root = &tmp.0;
    let (_relay, url) = relay();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let assert_refused = |c: Command, state: &Path, what: &str| {
        let (code, err) = refused(c);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("SEC-22"), "{err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(!state.join("host.key").exists(), "{}", state.display());
        assert!(!state.join("host.json").exists(), "{}", state.display());
    };

    // Inside the commands' temporary directory (TMPDIR).
    let commands_tmp = root.join("tmp");
    std::fs::create_dir_all(&commands_tmp).unwrap();
    let state = commands_tmp.join("state");
    let mut c = host_cmd(&state, &url, &[]);
    c.env("TMPDIR", &commands_tmp);
    assert_refused(c, &state, "temporary directory");
    // Around it.
    let state = root.join("around");
    let mut c = host_cmd(&state, &url, &[]);
    std::fs::create_dir_all(state.join("tmp")).unwrap();
    c.env("TMPDIR", state.join("tmp"));
    assert_refused(c, &state, "temporary directory");
    // Through a symbolic link to the temporary directory.
    let link = root.join("link-to-tmp");
    std::os::unix::fs::symlink(&commands_tmp, &link).unwrap();
    let state = link.join("linked-state");
    let mut c = host_cmd(&state, &url, &[]);
    c.env("TMPDIR", &commands_tmp);
    assert_refused(c, &state, "temporary directory");

    // Inside the default project: a checkout, named with --project or the current
    // directory.
    let project = root.join("project");
    std::fs::create_dir_all(project.join(".git")).unwrap();
    std::fs::create_dir_all(project.join("src")).unwrap();
    let state = project.join("src").join("host-state");
    let project_src = project.join("src");
    let c = host_cmd(&state, &url, &["--project", project_src.to_str().unwrap()]);
    assert_refused(c, &state, "default project");
    let mut c = host_cmd(&state, &url, &[]);
    c.current_dir(&project_src);
    assert_refused(c, &state, "default project");

    // Others may write it: refused, left as it was.
    let state = root.join("loose");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = host_cmd(&state, &url, &[]);
    assert_refused(c, &state, "chmod 700");
    assert_eq!(mode(&state), 0o777);

    // Others may read it: tightened; the host runs, with a state directory outside the
    // project it serves.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = host_cmd(&state, &url, &["--project", project_src.to_str().unwrap()]);
    let (_host, ready) = start_cmd_until(c, HOST_READY);
    assert!(ready.ends_with(&format!(" on {url}")), "{ready}");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("host.key")), 0o600);
    assert_eq!(mode(&state.join("run.json")), 0o600);
}
