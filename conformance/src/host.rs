//! The runner's side of a host under test: the target description, what the runner may ask
//! of the host's operator ([`HostAdmin`]: mint a token, revoke a device, switch remote
//! access), and a controller built from `tether-proto`'s sans-IO pieces that can also
//! misbehave on purpose ([`ChannelSession`], [`raw_message1`]).
//!
//! The runner reaches the host through a relay (the one the host joined) as a controller:
//! it connects with the workspace credential, sends `OPEN` with a message 1 it wrote itself,
//! reads message 2 from the first `DATA` of the session, and then speaks JSON-RPC inside
//! Noise transport messages, logging every plaintext it sends and receives.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tether_proto::channel::{
    HandshakePayload, HostInfo, Initiator, Prologue, Timestamp, Transport, ik_params, noise_builder,
};
use tether_proto::cmd::Message;
use tether_proto::keys::public_key;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::case::{CaseError, Outcome};
use crate::context::{Context, Credential, RelayTarget};
use crate::link::{ANSWER_WAIT, Link, controller, random_bytes, random_session};
use crate::traffic::describe;

/// A boxed future, for the object-safe [`HostAdmin`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the runner can ask of the host's operator, outside the protocol. Every method may
/// answer "not available" (`Ok(None)` / `Ok(false)`); cases that need it are then skipped
/// with the reason.
pub trait HostAdmin: Send + Sync + fmt::Debug {
    /// A fresh pairing token in text form, minted by the host under test. `ttl` asks for
    /// a lifetime in seconds (only when [`HostAdmin::can_set_ttl`]). `Ok(None)`: no more
    /// tokens.
    ///
    /// # Errors
    /// Minting failed.
    fn mint_token(&self, ttl: Option<u64>) -> BoxFuture<'_, Result<Option<String>, String>>;

    /// Whether [`HostAdmin::mint_token`] honours `ttl`.
    fn can_set_ttl(&self) -> bool {
        false
    }

    /// Whether [`HostAdmin::revoke`] is available.
    fn can_revoke(&self) -> bool {
        false
    }

    /// Whether [`HostAdmin::set_remote_access`] is available.
    fn can_switch_remote_access(&self) -> bool {
        false
    }

    /// Revokes the paired device named `device_name`. `Ok(false)`: not available.
    ///
    /// # Errors
    /// Revoking failed.
    fn revoke(&self, device_name: &str) -> BoxFuture<'_, Result<bool, String>> {
        let _ = device_name;
        Box::pin(async { Ok(false) })
    }

    /// Whether [`HostAdmin::start_instance`] is available.
    fn can_start_instance(&self) -> bool {
        false
    }

    /// Starts a second instance of the host, with a fresh state, told to join the relay at
    /// `relay_url` (for `SEC-19`: a relay whose certificate it must refuse). The instance
    /// stops when the returned guard is dropped.
    ///
    /// # Errors
    /// It could not start, or this admin cannot start instances.
    fn start_instance(&self, relay_url: &str) -> BoxFuture<'_, Result<Instance, String>> {
        let _ = relay_url;
        Box::pin(async { Err("this host target cannot start instances".to_owned()) })
    }

    /// Switches the host's remote access on or off. `Ok(false)`: not available.
    ///
    /// # Errors
    /// Switching failed.
    fn set_remote_access(&self, on: bool) -> BoxFuture<'_, Result<bool, String>> {
        let _ = on;
        Box::pin(async { Ok(false) })
    }
}

/// A host process the runner started: its process group is killed when this is dropped.
#[derive(Debug)]
pub struct Instance {
    child: Option<tokio::process::Child>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Instance {
    /// Starts `sh -c command` in its own process group, output to `log` (or discarded),
    /// with `TMPDIR` set to `tmpdir` when given; `dir` is removed when the instance ends.
    ///
    /// # Errors
    /// It could not start.
    pub fn spawn(
        command: &str,
        log: Option<&std::path::Path>,
        tmpdir: Option<&std::path::Path>,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Self, String> {
        let (out, err) = match log {
            Some(path) => {
                let f =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let g = f
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                (std::process::Stdio::from(f), std::process::Stdio::from(g))
            }
            None => (std::process::Stdio::null(), std::process::Stdio::null()),
        };
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(t) = tmpdir {
            cmd.env("TMPDIR", t);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting `{command}`: {e}"))?;
        Ok(Self {
            child: Some(child),
            task: None,
            _dir: dir,
        })
    }

    /// An instance that is a task of this process (for hosts driven in-process); it is
    /// aborted when the instance ends.
    pub fn from_task(task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            child: None,
            task: Some(task),
            _dir: None,
        }
    }

    /// Kills the process group (or aborts the task) now.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.start_kill();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Tokens given on the command line (`--token`, repeatable), handed out once each.
#[derive(Debug, Default)]
pub struct GivenTokens {
    tokens: Mutex<VecDeque<String>>,
}

impl GivenTokens {
    /// The tokens, used in the order given.
    pub fn new(tokens: Vec<String>) -> Self {
        Self {
            tokens: Mutex::new(tokens.into()),
        }
    }

    fn take(&self) -> Option<String> {
        self.tokens.lock().ok().and_then(|mut t| t.pop_front())
    }
}

impl HostAdmin for GivenTokens {
    fn mint_token(&self, _ttl: Option<u64>) -> BoxFuture<'_, Result<Option<String>, String>> {
        let t = self.take();
        Box::pin(async move { Ok(t) })
    }
}

/// Shell command templates run with `sh -c` for a host the runner started itself
/// (`--host-cmd`): `{state}` is the host's state directory, `{ttl}` a token lifetime in
/// seconds, `{device}` a device name, `{value}` `on` or `off`.
#[derive(Debug)]
pub struct CommandAdmin {
    /// The host's state directory.
    pub state: PathBuf,
    /// Prints a token on a line of its standard output (`tether host pair --state {state}`).
    pub pair_cmd: Option<String>,
    /// Revokes `{device}` (`tether host revoke --state {state} {device}`).
    pub revoke_cmd: Option<String>,
    /// Switches remote access to `{value}`.
    pub remote_access_cmd: Option<String>,
    /// Tokens given with `--token`, used before `pair_cmd`.
    pub given: GivenTokens,
    /// The `--host-cmd` template with the workspace and credential it was started with,
    /// for starting a second instance (`SEC-19`).
    pub host_cmd: Option<(String, String, String)>,
}

/// Writes the workspace credential, on one line, to a new file `path` of mode 0600, for a
/// host the runner starts: a host takes it from a file (`{credential_file}`), never on its
/// command line (`SEC-23`).
///
/// # Errors
/// The file exists already or cannot be written.
pub fn write_credential_file(path: &std::path::Path, credential: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| writeln!(f, "{credential}"))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Substitutes the placeholders of a command template.
pub fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Runs `sh -c COMMAND` and returns its standard output.
///
/// # Errors
/// It could not start, exited unsuccessfully or took more than 60 s.
pub async fn run_shell(command: &str) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .map_err(|_| format!("`{command}` took more than 60 s"))?
        .map_err(|e| format!("`{command}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line of `text` that is a token (`TETHER:`…).
pub fn find_token(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(tether_proto::token::TEXT_PREFIX))
        .map(str::to_owned)
}

impl HostAdmin for CommandAdmin {
    fn mint_token(&self, ttl: Option<u64>) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            if ttl.is_none()
                && let Some(t) = self.given.take()
            {
                return Ok(Some(t));
            }
            let Some(template) = &self.pair_cmd else {
                return Ok(None);
            };
            let ttl = ttl.unwrap_or(300).to_string();
            let state = self.state.display().to_string();
            let cmd = fill_template(template, &[("state", &state), ("ttl", &ttl)]);
            let out = run_shell(&cmd).await?;
            find_token(&out)
                .map(Some)
                .ok_or_else(|| format!("`{cmd}` printed no line starting with TETHER:"))
        })
    }

    fn can_set_ttl(&self) -> bool {
        self.pair_cmd
            .as_deref()
            .is_some_and(|t| t.contains("{ttl}"))
    }

    fn can_revoke(&self) -> bool {
        self.revoke_cmd.is_some()
    }

    fn can_switch_remote_access(&self) -> bool {
        self.remote_access_cmd.is_some()
    }

    fn revoke(&self, device_name: &str) -> BoxFuture<'_, Result<bool, String>> {
        let device = device_name.to_owned();
        Box::pin(async move {
            let Some(template) = &self.revoke_cmd else {
                return Ok(false);
            };
            let state = self.state.display().to_string();
            run_shell(&fill_template(
                template,
                &[("state", &state), ("device", &device)],
            ))
            .await
            .map(|_| true)
        })
    }

    fn can_start_instance(&self) -> bool {
        self.host_cmd.is_some()
    }

    fn start_instance(&self, relay_url: &str) -> BoxFuture<'_, Result<Instance, String>> {
        let url = relay_url.to_owned();
        Box::pin(async move {
            let Some((template, workspace, credential)) = &self.host_cmd else {
                return Err("no --host-cmd to start an instance with".to_owned());
            };
            let dir = tempfile::Builder::new()
                .prefix("tether-conformance-instance-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let state = dir.path().join("state").display().to_string();
            // SEC-23: the credential in a file; SEC-22: the host's temporary directory
            // beside its state directory, not around it.
            let credential_file = dir.path().join("credential");
            write_credential_file(&credential_file, credential)?;
            let credential_file = credential_file.display().to_string();
            let cmd = fill_template(
                template,
                &[
                    ("relay", &url),
                    ("state", &state),
                    ("workspace", workspace),
                    ("credential_file", &credential_file),
                    ("credential", credential),
                ],
            );
            let tmp = dir.path().join("tmp");
            std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            Instance::spawn(&cmd, None, Some(&tmp), Some(dir))
        })
    }

    fn set_remote_access(&self, on: bool) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let Some(template) = &self.remote_access_cmd else {
                return Ok(false);
            };
            let state = self.state.display().to_string();
            let value = if on { "on" } else { "off" };
            run_shell(&fill_template(
                template,
                &[("state", &state), ("value", value)],
            ))
            .await
            .map(|_| true)
        })
    }
}

/// A host under test.
pub struct HostTarget {
    /// The relay the host joined, with the host's workspace and credential (the runner
    /// connects as a controller of that workspace). Its other workspaces, if any, let the
    /// relay cases run against the same relay.
    pub relay: RelayTarget,
    /// Tokens, revocation, remote access.
    pub admin: Arc<dyn HostAdmin>,
    /// A directory on the host in its native form, for `command/exec` cases (default
    /// `/tmp` on a POSIX host).
    pub work_dir: Option<String>,
    /// What the target is, for reports.
    pub description: String,
    /// The host's approval time limit (`CMD-31`: 300 s; a host configured shorter for
    /// tests says so here).
    pub approval_timeout: Duration,
    /// The inactivity age the host was configured with (`CHAN-9`), if the runner was told
    /// it (`--max-inactive`); the `CHAN-9` inactivity cases are skipped without it.
    pub max_inactive: Option<Duration>,
    /// The host's state directory in its native form, when the runner knows it (it started
    /// the host with `{state}`): the `CMD-63` case checks that no sandboxed command sees it.
    pub state_dir: Option<String>,
    shared: tokio::sync::Mutex<Option<PairedDevice>>,
}

impl fmt::Debug for HostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostTarget")
            .field("relay", &self.relay.url)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// What the runner learnt from the host's first token.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The token's text.
    pub token_text: String,
    /// The decoded token.
    pub token: PairingToken,
    /// When the runner got it.
    pub received_at: UnixTime,
}

impl Identity {
    /// The host's static key.
    pub fn host_key(&self) -> [u8; 32] {
        *self.token.host_key()
    }

    /// The host's workspace.
    pub fn workspace(&self) -> &str {
        self.token.workspace()
    }
}

/// A controller identity: a static key and the last timestamp it sent (`CHAN-5`).
#[derive(Clone)]
pub struct Device {
    /// Static private key.
    pub private: [u8; 32],
    /// Static public key.
    pub public: [u8; 32],
    /// The name it pairs under.
    pub name: String,
    /// The last message-1 timestamp sent.
    pub last: Option<Timestamp>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({}, {})", self.name, hex::encode(self.public))
    }
}

impl Device {
    /// A fresh random device named `conf-<what>-<hex>`.
    pub fn fresh(what: &str) -> Self {
        let private = random_bytes::<32>();
        Self {
            private,
            public: public_key(&private),
            name: format!("conf-{what}-{}", hex::encode(random_bytes::<4>())),
            last: None,
        }
    }

    /// The next timestamp (`CHAN-5`), remembered as sent.
    pub fn next_timestamp(&mut self) -> Timestamp {
        let t = Timestamp::next_after(self.last, UnixTime::now());
        self.last = Some(t);
        t
    }
}

/// The device the runner pairs once and uses for every case that needs a paired
/// controller.
#[derive(Clone, Debug)]
pub struct PairedDevice {
    /// The host's identity, from the token used to pair.
    pub identity: Identity,
    /// The device.
    pub device: Device,
    /// The timestamp of the pairing handshake.
    pub paired_with: Timestamp,
    /// When the runner last sent a message 1 the host accepted for this device (the
    /// pairing or a session): the host's inactivity age (`CHAN-9`) runs from about then.
    pub last_accepted: std::time::Instant,
}

impl HostTarget {
    /// A host under test reached through `relay`.
    pub fn new(relay: RelayTarget, admin: Arc<dyn HostAdmin>, description: String) -> Self {
        Self {
            relay,
            admin,
            work_dir: None,
            description,
            approval_timeout: tether_proto::limits::APPROVAL_TIMEOUT,
            max_inactive: None,
            state_dir: None,
            shared: tokio::sync::Mutex::new(None),
        }
    }

    /// Tells the runner the inactivity age the host was configured with (`CHAN-9`): the
    /// `CHAN-9/inactive-device` and `CHAN-9/active-within-age` cases run (each waits about
    /// the age), and the runner keeps its own paired device active meanwhile (see
    /// [`paired`]). Ages from [`MIN_TESTABLE_INACTIVE`] to [`MAX_TESTABLE_INACTIVE`] can be
    /// tested; with another, those cases are skipped with the reason.
    #[must_use]
    pub fn with_max_inactive(mut self, age: Duration) -> Self {
        self.max_inactive = Some(age);
        self
    }

    /// Sets the approval time limit the `CMD-31` case waits for.
    #[must_use]
    pub fn with_approval_timeout(mut self, limit: Duration) -> Self {
        self.approval_timeout = limit;
        self
    }

    /// Sets the directory on the host used by `command/exec` cases.
    #[must_use]
    pub fn with_work_dir(mut self, dir: impl Into<String>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    /// Tells the runner the host's state directory (`CMD-63`).
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<String>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
}

/// How a host case ends early: a failure or a skip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The host broke the rule.
    Fail(String),
    /// The case cannot run against this target (the reason says what to give the runner).
    Skip(String),
}

impl From<CaseError> for Stop {
    fn from(e: CaseError) -> Self {
        Self::Fail(e.0)
    }
}

impl Stop {
    /// The case outcome.
    pub fn outcome(self) -> Result<Outcome, CaseError> {
        match self {
            Self::Fail(r) => Err(CaseError(r)),
            Self::Skip(r) => Ok(Outcome::Skip(r)),
        }
    }
}

/// What host helpers return.
pub type Res<T> = Result<T, Stop>;

/// Fails with `reason`.
pub fn hfail<T>(reason: impl Into<String>) -> Res<T> {
    Err(Stop::Fail(reason.into()))
}

/// Skips with `reason`.
pub fn skip<T>(reason: impl Into<String>) -> Res<T> {
    Err(Stop::Skip(reason.into()))
}

/// Fails with `reason()` unless `cond`.
pub fn check(cond: bool, reason: impl FnOnce() -> String) -> Res<()> {
    if cond { Ok(()) } else { hfail(reason()) }
}

/// The host under test of a context.
///
/// # Errors
/// A skip when the target is not a host.
pub fn host_target(cx: &Context) -> Res<&HostTarget> {
    match cx.target.as_ref() {
        crate::context::Target::Host(h) => Ok(h),
        crate::context::Target::Relay(_) => skip("no host under test"),
    }
}

/// A fresh token from the host (a skip when none is available).
///
/// # Errors
/// Skip when the host can mint no more; failure when minting fails or the token does not
/// decode.
pub async fn fresh_token(cx: &Context, ttl: Option<u64>) -> Res<(String, PairingToken)> {
    let host = host_target(cx)?;
    let text = match host.admin.mint_token(ttl).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return skip(
                "needs one more pairing token than the runner was given: repeat --token, or give --pair-cmd",
            );
        }
        Err(e) => return hfail(format!("minting a pairing token: {e}")),
    };
    cx.log.note("runner", "got a pairing token from the host");
    let token = PairingToken::from_text(&text).map_err(|e| {
        Stop::Fail(format!(
            "the host's pairing token does not decode: {} [{}]",
            e.name(),
            e.requirement()
        ))
    })?;
    Ok((text, token))
}

/// The shortest inactivity age the `CHAN-9` inactivity cases can test reliably: the
/// runner's own paired device must be kept active (below) with handshakes a third of the
/// age apart on a loaded machine, and `CHAN-9/active-within-age` reconnects 0.6 of the age
/// after the last handshake, leaving 0.4 of it for the handshake itself.
pub const MIN_TESTABLE_INACTIVE: Duration = Duration::from_secs(5);

/// The longest inactivity age the `CHAN-9` inactivity cases wait for (their time limits
/// are sized for it).
pub const MAX_TESTABLE_INACTIVE: Duration = Duration::from_secs(600);

/// Keeps the runner's shared paired device active on a host with an inactivity age
/// (`CHAN-9`): every eighth of the age, if the device's last accepted handshake is older
/// than a third of the age, opens a session with it and closes it. Without this a host
/// configured with a short age for testing would expire the device during a pause in the
/// run (`--jobs 1`, the relay's timer cases) and close its long sessions (`CHAN-19/rekey`
/// holds one for about 30 s; a host closes the sessions of a device that passes its age,
/// `SEC-13`). Only the shared device is kept active: the inactivity cases use devices of
/// their own. Handshakes refused meanwhile (remote access switched off by `CHAN-26` or
/// `CMD-55`, the rate limit spent by `CHAN-14`) are retried at the next tick. Ends when
/// the target is dropped (the run is over).
async fn keep_active(target: std::sync::Weak<crate::context::Target>, age: Duration) {
    let tick = (age / 8).max(Duration::from_millis(200));
    let stale = age / 3;
    loop {
        tokio::time::sleep(tick).await;
        let Some(target) = target.upgrade() else {
            return;
        };
        let crate::context::Target::Host(host) = target.as_ref() else {
            return;
        };
        // Held through the handshake, as for any session of the device (`CHAN-10`).
        let mut shared = host.shared.lock().await;
        let Some(p) = shared.as_mut() else {
            continue;
        };
        if p.last_accepted.elapsed() < stale {
            continue;
        }
        let cx = Context {
            case_id: "keep-active",
            target: Arc::clone(&target),
            log: crate::traffic::TrafficLog::new(),
        };
        let payload = HandshakePayload::Session {
            timestamp: p.device.next_timestamp(),
        };
        let sent = std::time::Instant::now();
        let opened = open_with(
            &cx,
            "keep-active",
            &p.identity,
            &p.device,
            &payload,
            random_session(),
        )
        .await;
        if let Ok((Opened::Established(s), _)) = opened {
            p.last_accepted = sent;
            s.close().await;
        }
    }
}

/// The shared paired device, pairing it with the host's first token on first use. On a
/// host with a known inactivity age ([`HostTarget::with_max_inactive`]) the runner keeps
/// it active from then on (`keep_active`).
///
/// # Errors
/// Skip without a token; failure when pairing fails.
pub async fn paired(cx: &Context) -> Res<PairedDevice> {
    let host = host_target(cx)?;
    let mut shared = host.shared.lock().await;
    if let Some(p) = shared.as_ref() {
        return Ok(p.clone());
    }
    let (text, token) = fresh_token(cx, None).await?;
    let identity = Identity {
        token_text: text,
        token,
        received_at: UnixTime::now(),
    };
    let mut device = Device::fresh("main");
    let ts = device.next_timestamp();
    let payload = pair_payload(&identity.token, &device, ts);
    let sent = std::time::Instant::now();
    match open(cx, "pairing", &identity, &device, &payload).await? {
        Opened::Established(s) => s.close().await,
        Opened::Refused(code, _) => {
            return hfail(format!(
                "pairing with the host's first token was refused with CLOSE {code} (CHAN-12)"
            ));
        }
    }
    let p = PairedDevice {
        identity,
        device,
        paired_with: ts,
        last_accepted: sent,
    };
    *shared = Some(p.clone());
    if let Some(age) = host.max_inactive {
        tokio::spawn(keep_active(Arc::downgrade(&cx.target), age));
    }
    Ok(p)
}

/// Opens a SESSION with the shared paired device (handshakes of the device are serialized
/// so that its timestamps reach the host in order, `CHAN-10`).
///
/// # Errors
/// As [`paired`]; failure when the host refuses the session.
pub async fn session(cx: &Context, name: &str) -> Res<ChannelSession> {
    match session_with(cx, name, None).await? {
        Opened::Established(s) => Ok(*s),
        Opened::Refused(code, _) => hfail(format!(
            "{name}: the paired device's session was refused with CLOSE {code}"
        )),
    }
}

/// Opens a SESSION with the shared paired device and the given timestamp (or the next one).
///
/// # Errors
/// As [`paired`].
pub async fn session_with(cx: &Context, name: &str, timestamp: Option<Timestamp>) -> Res<Opened> {
    session_capture(cx, name, timestamp, random_session())
        .await
        .map(|(o, _)| o)
}

/// [`session_with`] with a chosen session id; also returns message 1.
///
/// # Errors
/// As [`paired`].
pub async fn session_capture(
    cx: &Context,
    name: &str,
    timestamp: Option<Timestamp>,
    session: SessionId,
) -> Res<(Opened, Vec<u8>)> {
    paired(cx).await?;
    let host = host_target(cx)?;
    let mut shared = host.shared.lock().await;
    let Some(p) = shared.as_mut() else {
        return hfail("the paired device is gone");
    };
    let ts = match timestamp {
        Some(t) => t,
        None => p.device.next_timestamp(),
    };
    let identity = p.identity.clone();
    let device = p.device.clone();
    let sent = std::time::Instant::now();
    let opened = open_with(
        cx,
        name,
        &identity,
        &device,
        &HandshakePayload::Session { timestamp: ts },
        session,
    )
    .await?;
    if matches!(opened.0, Opened::Established(_)) {
        p.last_accepted = sent;
    }
    Ok(opened)
}

/// The last timestamp the shared device sent, and the timestamp of its pairing.
///
/// # Errors
/// As [`paired`].
pub async fn paired_timestamps(cx: &Context) -> Res<(Timestamp, Timestamp)> {
    let p = paired(cx).await?;
    let host = host_target(cx)?;
    let shared = host.shared.lock().await;
    let last = shared
        .as_ref()
        .and_then(|s| s.device.last)
        .unwrap_or(p.paired_with);
    Ok((last, p.paired_with))
}

/// A PAIR payload for `token`.
pub fn pair_payload(token: &PairingToken, device: &Device, ts: Timestamp) -> HandshakePayload {
    HandshakePayload::Pair {
        timestamp: ts,
        token_id: *token.token_id(),
        token_secret: *token.token_secret(),
        device_name: device.name.clone(),
    }
}

/// The result of sending message 1.
#[derive(Debug)]
pub enum Opened {
    /// Message 2 arrived and read correctly.
    Established(Box<ChannelSession>),
    /// The host (or relay) closed the session with this code instead.
    Refused(CloseCode, Link),
}

impl Opened {
    /// The refusal code, or a failure naming what was expected.
    ///
    /// # Errors
    /// The session was established.
    pub async fn refused(self, expected: &str) -> Res<CloseCode> {
        match self {
            Self::Refused(code, _) => Ok(code),
            Self::Established(s) => {
                s.close().await;
                hfail(format!("expected {expected}, but the host sent message 2"))
            }
        }
    }
}

/// Opens a session with a correct message 1 built from `payload`.
///
/// # Errors
/// Failure of the link, or a message 2 that does not read (`CHAN-6`, `CHAN-7`, `CHAN-8`,
/// `CHAN-25`).
pub async fn open(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &Device,
    payload: &HandshakePayload,
) -> Res<Opened> {
    open_with(cx, name, identity, device, payload, random_session())
        .await
        .map(|(o, _)| o)
}

/// [`open`] with a chosen session id; also returns message 1 (for replay cases).
///
/// # Errors
/// As [`open`].
pub async fn open_with(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &Device,
    payload: &HandshakePayload,
    session: SessionId,
) -> Res<(Opened, Vec<u8>)> {
    let host_key = identity.host_key();
    let prologue = Prologue::new(identity.workspace(), &host_key, session)
        .map_err(|e| Stop::Fail(format!("prologue: {e}")))?;
    let initiator = Initiator::new(&device.private, &host_key, &prologue, payload)
        .map_err(|e| Stop::Fail(format!("writing message 1: {e}")))?;
    let msg1 = initiator.message1().to_vec();
    let host = host_target(cx)?;
    let mut link = controller(cx, name, &host.relay.workspace).await?;
    match send_message1(&mut link, session, &host_key, msg1.clone()).await? {
        Err(code) => Ok((Opened::Refused(code, link), msg1)),
        Ok(msg2) => {
            let (transport, info) = initiator.read_message2(&msg2).map_err(|e| {
                Stop::Fail(format!(
                    "{name}: message 2 does not read: {e} [{}]",
                    e.requirement()
                ))
            })?;
            cx.log.note(
                name,
                format!(
                    "handshake complete; host info: name={:?} os={} capabilities={:?}",
                    info.name, info.os, info.capabilities
                ),
            );
            Ok((
                Opened::Established(Box::new(ChannelSession::new(
                    cx, name, link, session, transport, info,
                ))),
                msg1,
            ))
        }
    }
}

/// Sends `OPEN` with `msg1` and waits for the host's answer: the first `DATA` of the
/// session (message 2, `CHAN-28`) or its `CLOSE`.
///
/// # Errors
/// Another frame, or nothing within 15 s.
pub async fn send_message1(
    link: &mut Link,
    session: SessionId,
    host_key: &[u8; 32],
    msg1: Vec<u8>,
) -> Res<Result<Vec<u8>, CloseCode>> {
    link.send(&RelayFrame::Open {
        session,
        host_key: *host_key,
        handshake: msg1,
    })
    .await?;
    match link.recv(Duration::from_secs(15)).await {
        Ok(RelayFrame::Data {
            session: s,
            payload,
        }) if s == session => Ok(Ok(payload)),
        Ok(RelayFrame::Close { session: s, code }) if s == session => Ok(Err(code)),
        Ok(other) => hfail(format!(
            "{}: expected message 2 or CLOSE for session {session}, got {}",
            link.name(),
            describe(&other)
        )),
        Err(e) => hfail(format!(
            "no answer to message 1 within 15 s (expected message 2 or CLOSE): {e}"
        )),
    }
}

/// Message 1 with any payload bytes and any prologue bytes: `-> e, es, s, ss` of
/// `Noise_IK_25519_ChaChaPoly_BLAKE2s` written by snow, for cases that send what a correct
/// controller would not.
///
/// # Errors
/// Noise refuses the inputs (a case bug).
pub fn raw_message1(
    local_static: &[u8; 32],
    host_key: &[u8; 32],
    prologue: &[u8],
    payload: &[u8],
) -> Res<Vec<u8>> {
    let params = ik_params().map_err(|e| Stop::Fail(format!("noise params: {e}")))?;
    let mut hs = noise_builder(params)
        .local_private_key(local_static)
        .and_then(|b| b.remote_public_key(host_key))
        .and_then(|b| b.prologue(prologue))
        .and_then(|b| b.build_initiator())
        .map_err(|e| Stop::Fail(format!("noise set-up: {e}")))?;
    let mut out = vec![0u8; 96 + payload.len() + 16];
    let n = hs
        .write_message(payload, &mut out)
        .map_err(|e| Stop::Fail(format!("writing message 1: {e}")))?;
    out.truncate(n);
    Ok(out)
}

/// One host message as the runner received it.
#[derive(Clone, Debug)]
pub struct HostMessage {
    /// The JSON value.
    pub value: Value,
}

impl HostMessage {
    /// `method`, if any.
    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }

    /// `params`, or `null`.
    pub fn params(&self) -> &Value {
        self.value.get("params").unwrap_or(&Value::Null)
    }
}

/// How long message helpers wait for the host.
pub const HOST_WAIT: Duration = Duration::from_secs(10);

/// The controller end of an established session.
pub struct ChannelSession {
    name: String,
    log: crate::traffic::TrafficLog,
    /// The relay link carrying the session.
    pub link: Link,
    /// The session id.
    pub id: SessionId,
    /// The transport (public so cases can misuse it).
    pub transport: Transport,
    /// Message 2's host info.
    pub info: HostInfo,
    next_id: i64,
    /// Messages received while waiting for something else, oldest first.
    pub backlog: VecDeque<HostMessage>,
    finished: HashSet<String>,
    /// The `initialize` result, once initialized.
    pub init: Option<Value>,
}

impl fmt::Debug for ChannelSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSession")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// At most this many bytes of a plaintext go into the log.
const LOGGED_PLAINTEXT: usize = 300;

fn preview(bytes: &[u8]) -> String {
    let cut = bytes.get(..LOGGED_PLAINTEXT).unwrap_or(bytes);
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > LOGGED_PLAINTEXT {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

impl ChannelSession {
    fn new(
        cx: &Context,
        name: &str,
        link: Link,
        id: SessionId,
        transport: Transport,
        info: HostInfo,
    ) -> Self {
        Self {
            name: name.to_owned(),
            log: cx.log.clone(),
            link,
            id,
            transport,
            info,
            next_id: 1,
            backlog: VecDeque::new(),
            finished: HashSet::new(),
            init: None,
        }
    }

    /// Encrypts `plaintext` (whatever it is) as the next transport message and sends it.
    ///
    /// # Errors
    /// The transport refuses (over 65519 bytes) or the link fails.
    pub async fn send_plain(&mut self, plaintext: &[u8]) -> Res<()> {
        let mut payload = Vec::new();
        self.transport
            .encrypt(plaintext, &mut payload)
            .map_err(|e| Stop::Fail(format!("{}: encrypting: {e}", self.name)))?;
        self.log.note(
            &self.name,
            format!(
                "plaintext -> (nonce {}): {}",
                self.transport.sending_nonce().saturating_sub(1),
                preview(plaintext)
            ),
        );
        self.send_ciphertext(payload).await
    }

    /// Sends `payload` as a `DATA` frame of the session, as is.
    ///
    /// # Errors
    /// The link fails.
    pub async fn send_ciphertext(&mut self, payload: Vec<u8>) -> Res<()> {
        self.link
            .send(&RelayFrame::Data {
                session: self.id,
                payload,
            })
            .await
            .map_err(Stop::from)
    }

    /// Sends a JSON value.
    ///
    /// # Errors
    /// As [`ChannelSession::send_plain`].
    pub async fn send_json(&mut self, value: &Value) -> Res<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Stop::Fail(format!("json: {e}")))?;
        self.send_plain(&bytes).await
    }

    /// A fresh request id.
    pub fn fresh_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next `DATA` of the session, or `Err(code)` for its `CLOSE`.
    ///
    /// # Errors
    /// Another frame or nothing within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Res<Result<Vec<u8>, CloseCode>> {
        match self.link.recv(wait).await? {
            RelayFrame::Data { session, payload } if session == self.id => Ok(Ok(payload)),
            RelayFrame::Close { session, code } if session == self.id => Ok(Err(code)),
            other => hfail(format!(
                "{}: expected DATA or CLOSE of session {}, got {}",
                self.name,
                self.id,
                describe(&other)
            )),
        }
    }

    /// The next message of the host, decrypted and checked against the envelope rules
    /// (`CMD-1`..`CMD-10`; `CHAN-16`: one message per transport message). Output deltas are
    /// checked as they pass (`CMD-36`, `CMD-40`).
    ///
    /// # Errors
    /// The session closed, nothing arrived, or the message breaks a rule.
    pub async fn recv(&mut self, wait: Duration) -> Res<HostMessage> {
        let payload = match self.next_frame(wait).await {
            Ok(Ok(p)) => p,
            Ok(Err(code)) => {
                return hfail(format!(
                    "{}: the host closed the session with CLOSE {code}",
                    self.name
                ));
            }
            Err(e) => return Err(e),
        };
        let mut plain = Vec::new();
        self.transport.decrypt(&payload, &mut plain).map_err(|e| {
            Stop::Fail(format!(
                "{}: a transport message from the host does not decrypt: {e} (CHAN-17, CHAN-21)",
                self.name
            ))
        })?;
        self.log.note(
            &self.name,
            format!(
                "plaintext <- (nonce {}): {}",
                self.transport.receiving_nonce().saturating_sub(1),
                preview(&plain)
            ),
        );
        if let Err(e) = Message::parse(&plain) {
            return hfail(format!(
                "{}: the host sent a message that breaks the envelope rules: {} [{}]",
                self.name,
                e.name(),
                e.requirement()
            ));
        }
        let value: Value = serde_json::from_slice(&plain)
            .map_err(|e| Stop::Fail(format!("{}: host message: {e}", self.name)))?;
        let msg = HostMessage { value };
        if msg.method() == Some("command/exec/outputDelta") {
            check_delta(msg.params())?;
            if let Some(pid) = msg.params().get("processId").and_then(Value::as_str)
                && self.finished.contains(pid)
            {
                return hfail(format!(
                    "the host sent an output delta for process {pid:?} after answering its command/exec (CMD-36)"
                ));
            }
        }
        Ok(msg)
    }

    /// Sends a request and returns the whole answer (response or error response);
    /// notifications that arrive first go to the backlog.
    ///
    /// # Errors
    /// No answer within `wait`, the session ends, or a message breaks a rule.
    pub async fn call_wait(&mut self, method: &str, params: Value, wait: Duration) -> Res<Value> {
        let id = self.fresh_id();
        let mut req = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null()
            && let Some(o) = req.as_object_mut()
        {
            o.insert("params".to_owned(), params);
        }
        self.send_json(&req).await?;
        self.answer_to(&json!(id), wait).await
    }

    /// [`ChannelSession::call_wait`] with [`HOST_WAIT`].
    ///
    /// # Errors
    /// As [`ChannelSession::call_wait`].
    pub async fn call(&mut self, method: &str, params: Value) -> Res<Value> {
        self.call_wait(method, params, HOST_WAIT).await
    }

    /// Waits for the answer to the request with `id`; other messages go to the backlog.
    ///
    /// # Errors
    /// As [`ChannelSession::call_wait`].
    pub async fn answer_to(&mut self, id: &Value, wait: Duration) -> Res<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv(left).await.map_err(|e| match e {
                Stop::Fail(r) => Stop::Fail(format!("waiting for the answer to request {id}: {r}")),
                s @ Stop::Skip(_) => s,
            })?;
            if msg.method().is_none() && msg.value.get("id") == Some(id) {
                return Ok(msg.value);
            }
            self.backlog.push_back(msg);
        }
    }

    /// Sends a request and returns its `result`.
    ///
    /// # Errors
    /// An error response, or as [`ChannelSession::call`].
    pub async fn call_ok(&mut self, method: &str, params: Value) -> Res<Value> {
        let answer = self.call(method, params).await?;
        match answer.get("result") {
            Some(r) => Ok(r.clone()),
            None => hfail(format!(
                "{method}: expected a result, got the error {}",
                answer.get("error").unwrap_or(&Value::Null)
            )),
        }
    }

    /// `initialize` (`CMD-15`) and `initialized`; returns the result.
    ///
    /// # Errors
    /// The host refuses.
    pub async fn initialize(&mut self) -> Res<Value> {
        let result = self
            .call_ok(
                "initialize",
                json!({"clientInfo": {"name": "tether-conformance", "version": env!("CARGO_PKG_VERSION")}, "protocolVersion": "tether/1"}),
            )
            .await?;
        self.send_json(&json!({"jsonrpc": "2.0", "method": "initialized"}))
            .await?;
        self.init = Some(result.clone());
        Ok(result)
    }

    /// Whether the host listed `capability` in `initialize` (or, before it, in message 2).
    pub fn has_capability(&self, capability: &str) -> bool {
        match &self.init {
            Some(init) => init
                .get("capabilities")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|c| c.as_str() == Some(capability))),
            None => self.info.has_capability(capability),
        }
    }

    /// Expects the host to send nothing on the session for `dur`.
    ///
    /// # Errors
    /// Something arrived.
    pub async fn expect_silence(&mut self, dur: Duration) -> Res<()> {
        match self.recv(dur).await {
            Ok(m) => hfail(format!(
                "{}: expected nothing from the host, got {}",
                self.name, m.value
            )),
            Err(Stop::Fail(r)) if r.contains("nothing received") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Expects `CLOSE code` for the session, allowing `DATA` before it (decrypted and
    /// dropped) when `allow_data`.
    ///
    /// # Errors
    /// Another code, another frame, or nothing.
    pub async fn expect_close(&mut self, code: CloseCode, allow_data: bool) -> Res<()> {
        loop {
            match self.next_frame(HOST_WAIT).await {
                Ok(Err(c)) if c == code => return Ok(()),
                Ok(Err(c)) => {
                    return hfail(format!(
                        "{}: expected CLOSE {code}, got CLOSE {c}",
                        self.name
                    ));
                }
                Ok(Ok(_)) if allow_data => {}
                Ok(Ok(p)) => {
                    return hfail(format!(
                        "{}: expected CLOSE {code}, got DATA ({} bytes)",
                        self.name,
                        p.len()
                    ));
                }
                Err(Stop::Fail(r)) => {
                    return hfail(format!("expected CLOSE {code}: {r}"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks a process as answered (its deltas must have ended, `CMD-36`).
    pub fn finished(&mut self, process_id: &str) {
        self.finished.insert(process_id.to_owned());
    }

    /// Ends the session with `CLOSE NORMAL` and the link with it.
    pub async fn close(mut self) {
        let _ = self
            .link
            .send(&RelayFrame::Close {
                session: self.id,
                code: CloseCode::NORMAL,
            })
            .await;
        self.link.close_websocket().await;
    }
}

/// `CMD-40`: a delta's chunk is standard padded base64 of 1..=16384 bytes (empty only with
/// `capReached`).
fn check_delta(params: &Value) -> Res<()> {
    let Some(b64) = params.get("deltaBase64").and_then(Value::as_str) else {
        return hfail(format!(
            "an output delta without a deltaBase64 string: {params}"
        ));
    };
    let raw = tether_proto::cmd::methods::decode_delta(b64).map_err(|e| {
        Stop::Fail(format!(
            "an output delta whose deltaBase64 is not standard padded base64: {e} (CMD-40)"
        ))
    })?;
    let cap = params.get("capReached").and_then(Value::as_bool);
    check(cap.is_some(), || {
        format!("an output delta without the boolean capReached: {params} (CMD-40)")
    })?;
    check(raw.len() <= tether_proto::limits::MAX_OUTPUT_CHUNK, || {
        format!(
            "an output delta of {} raw bytes; at most 16384 are allowed (CMD-40)",
            raw.len()
        )
    })?;
    check(!raw.is_empty() || cap == Some(true), || {
        "an empty output delta without capReached (CMD-40)".to_owned()
    })
}

/// What one `command/exec` produced.
#[derive(Clone, Debug, Default)]
pub struct ExecRun {
    /// The answer (response or error response).
    pub answer: Value,
    /// Stdout bytes, in delta order.
    pub stdout: Vec<u8>,
    /// Stderr bytes, in delta order.
    pub stderr: Vec<u8>,
    /// Every delta's params, in order.
    pub deltas: Vec<Value>,
}

impl ExecRun {
    /// The `result`, if the answer is a success.
    pub fn result(&self) -> Option<&Value> {
        self.answer.get("result")
    }

    /// The error code, if the answer is an error.
    pub fn error_code(&self) -> Option<i64> {
        self.answer
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
    }

    /// `result.exitCode`.
    pub fn exit_code(&self) -> Option<i64> {
        self.result()
            .and_then(|r| r.get("exitCode"))
            .and_then(Value::as_i64)
    }
}

impl ChannelSession {
    /// Runs `command/exec` with `params` (a `processId` is added if absent) and collects
    /// its deltas until the answer (`CMD-35`, `CMD-36`).
    ///
    /// # Errors
    /// No answer within `wait`, or a rule broken on the way.
    pub async fn exec(&mut self, mut params: Value, wait: Duration) -> Res<ExecRun> {
        let pid = match params.get("processId").and_then(Value::as_str) {
            Some(p) => p.to_owned(),
            None => {
                let p = format!("p{}", hex::encode(random_bytes::<4>()));
                if let Some(o) = params.as_object_mut() {
                    o.insert("processId".to_owned(), json!(p));
                }
                p
            }
        };
        let id = self.fresh_id();
        self.send_json(
            &json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": params}),
        )
        .await?;
        let run = self.collect_exec(&json!(id), &pid, wait).await?;
        Ok(run)
    }

    /// Collects the deltas of `pid` until the answer to request `id`.
    ///
    /// # Errors
    /// As [`ChannelSession::exec`].
    pub async fn collect_exec(&mut self, id: &Value, pid: &str, wait: Duration) -> Res<ExecRun> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut run = ExecRun::default();
        let mut pending: Vec<HostMessage> = self.backlog.drain(..).collect();
        pending.reverse();
        loop {
            let msg = match pending.pop() {
                Some(m) => m,
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.recv(left).await.map_err(|e| match e {
                        Stop::Fail(r) => {
                            Stop::Fail(format!("waiting for command/exec {pid:?} to end: {r}"))
                        }
                        s @ Stop::Skip(_) => s,
                    })?
                }
            };
            if msg.method() == Some("command/exec/outputDelta")
                && msg.params().get("processId").and_then(Value::as_str) == Some(pid)
            {
                let raw = msg
                    .params()
                    .get("deltaBase64")
                    .and_then(Value::as_str)
                    .and_then(|b| tether_proto::cmd::methods::decode_delta(b).ok())
                    .unwrap_or_default();
                match msg.params().get("stream").and_then(Value::as_str) {
                    Some("stdout") => run.stdout.extend_from_slice(&raw),
                    Some("stderr") => run.stderr.extend_from_slice(&raw),
                    other => {
                        return hfail(format!(
                            "an output delta with stream {other:?}; expected \"stdout\" or \"stderr\""
                        ));
                    }
                }
                run.deltas.push(msg.params().clone());
                continue;
            }
            if msg.method().is_none() && msg.value.get("id") == Some(id) {
                run.answer = msg.value;
                self.finished(pid);
                return Ok(run);
            }
            self.backlog.push_back(msg);
        }
    }

    /// A directory on the host for `command/exec` cases.
    ///
    /// # Errors
    /// Skip for a host whose path style the runner has no default for.
    pub fn work_dir(&self, cx: &Context) -> Res<String> {
        let host = host_target(cx)?;
        if let Some(d) = &host.work_dir {
            return Ok(d.clone());
        }
        match self.info.path_style {
            tether_proto::channel::PathStyle::Posix => Ok("/tmp".to_owned()),
            _ => skip("no directory on this host for command/exec cases: give --work-dir"),
        }
    }

    /// Skips unless the host offers `command/exec` (`CMD-16`).
    ///
    /// # Errors
    /// Skip.
    pub fn need_exec(&self) -> Res<()> {
        if self.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
            Ok(())
        } else {
            skip("the host does not offer command.exec (CMD-16)")
        }
    }
}

/// A shared handle on a relay target of a host target, for [`Context::relay`].
pub fn relay_of(host: &HostTarget) -> &RelayTarget {
    &host.relay
}

/// The credential the runner connects with.
pub fn credential_of(host: &HostTarget) -> &Credential {
    &host.relay.workspace
}

/// Waits for a `CLOSE` of any session or nothing; used after a burst.
///
/// # Errors
/// The link fails.
pub async fn drain(link: &mut Link, dur: Duration) -> Res<Vec<RelayFrame>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        match link.recv(left).await {
            Ok(f) => out.push(f),
            Err(_) => return Ok(out),
        }
    }
}

/// Default answer wait re-exported for cases.
pub const WAIT: Duration = ANSWER_WAIT;

/// Waits until the host with `host_key` answers through `relay`: sends `OPEN` with a
/// message 1 that cannot decrypt until the answer is a `CLOSE` from the host (an
/// end-to-end code, 32 and up) rather than from the relay (no such host yet). Used when
/// the runner started the host itself.
///
/// # Errors
/// The host did not answer within `within`.
pub async fn wait_for_host(
    relay: &RelayTarget,
    host_key: &[u8; 32],
    within: Duration,
) -> Result<(), String> {
    let target = Arc::new(crate::context::Target::Relay(relay.clone()));
    let cx = Context {
        case_id: "wait-for-host",
        target,
        log: crate::traffic::TrafficLog::new(),
    };
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::from("nothing tried");
    while tokio::time::Instant::now() < deadline {
        match controller(&cx, "probe", &relay.workspace).await {
            Ok(mut link) => {
                let session = random_session();
                let mut junk = vec![9u8; 32];
                junk.extend_from_slice(&[0u8; 78]);
                match send_message1(&mut link, session, host_key, junk).await {
                    Ok(Err(code)) if code.0 >= 32 => return Ok(()),
                    Ok(Err(code)) => last = format!("the relay answered CLOSE {code}"),
                    Ok(Ok(_)) => return Ok(()),
                    Err(Stop::Fail(e) | Stop::Skip(e)) => last = e,
                }
                link.close_websocket().await;
            }
            Err(e) => last = e.0,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the host did not answer through {} within {} s ({last})",
        relay.url,
        within.as_secs()
    ))
}

impl ChannelSession {
    /// Reads host messages (the backlog first) until one satisfies `pred`; returns every
    /// message read, the matching one last.
    ///
    /// # Errors
    /// Nothing matching within `wait`, or a rule broken on the way.
    pub async fn read_until(
        &mut self,
        wait: Duration,
        what: &str,
        pred: impl Fn(&HostMessage) -> bool,
    ) -> Res<Vec<HostMessage>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let msg = match self.backlog.pop_front() {
                Some(m) => m,
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.recv(left).await.map_err(|e| match e {
                        Stop::Fail(r) => Stop::Fail(format!("waiting for {what}: {r}")),
                        s @ Stop::Skip(_) => s,
                    })?
                }
            };
            let done = pred(&msg);
            seen.push(msg);
            if done {
                return Ok(seen);
            }
        }
    }

    /// Sends the answer `result` to the host's request `id`.
    ///
    /// # Errors
    /// The link fails.
    pub async fn answer(&mut self, id: &Value, result: Value) -> Res<()> {
        self.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
            .await
    }
}
