//! What the runner may ask of an operator, outside the protocol: a host's operator mints
//! tokens, revokes devices, switches remote access and starts instances ([`HostAdmin`]); a
//! relay's operator reconfigures workspaces while the relay runs ([`RelayAdmin`]). The
//! `Command*` implementations run shell command templates (`--pair-cmd`,
//! `--reconfigure-cmd`, ...).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

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

/// What the runner may ask of the relay's operator, outside the protocol: reconfigure a
/// workspace while the relay runs (`LINK-37`). The `LINK-37` cases add a workspace of their
/// own (named `tether-conf-` and 12 hex digits, with a fresh credential of 32 hex digits),
/// change it, and remove it at their end, so the workspaces the target was given are never
/// touched.
pub trait RelayAdmin: Send + Sync + fmt::Debug {
    /// Sets `workspace` to `credential` with remote access `remote_access`, adding it if it
    /// is new; `credential: None` removes the workspace (`remote_access` is then ignored).
    /// Returns once the relay has applied the change: the `LINK-37` bound (1 s) runs from
    /// then.
    ///
    /// # Errors
    /// The relay could not be reconfigured.
    fn set_workspace(
        &self,
        workspace: &str,
        credential: Option<&[u8]>,
        remote_access: bool,
    ) -> BoxFuture<'_, Result<(), String>>;
}

/// A [`RelayAdmin`] that runs a shell command template with `sh -c` (`--reconfigure-cmd`).
///
/// Placeholders: `{action}` is `set` or `remove`; `{workspace}` the workspace id;
/// `{credential}` the credential (empty for `remove`); `{credential_blake2s}` its
/// BLAKE2s-256 digest in 64 lowercase hex digits (empty for `remove`); `{remote_access}`
/// `true` or `false` (`false` for `remove`). Every value the runner substitutes is made of
/// `a-z 0-9 -` only, so it needs no shell quoting. The command must exit 0 once the relay
/// has applied the change (a command that only signals the relay should wait for it).
#[derive(Clone, Debug)]
pub struct CommandRelayAdmin {
    /// The template.
    pub reconfigure_cmd: String,
}

impl RelayAdmin for CommandRelayAdmin {
    fn set_workspace(
        &self,
        workspace: &str,
        credential: Option<&[u8]>,
        remote_access: bool,
    ) -> BoxFuture<'_, Result<(), String>> {
        let cmd = reconfigure_command(&self.reconfigure_cmd, workspace, credential, remote_access);
        Box::pin(async move { run_shell(&cmd).await.map(|_| ()) })
    }
}

/// Fills a `--reconfigure-cmd` template (see [`CommandRelayAdmin`]).
pub fn reconfigure_command(
    template: &str,
    workspace: &str,
    credential: Option<&[u8]>,
    remote_access: bool,
) -> String {
    let (action, plain, digest) = match credential {
        Some(c) => (
            "set",
            String::from_utf8_lossy(c).into_owned(),
            hex::encode(tether_proto::link::router::credential_digest(c)),
        ),
        None => ("remove", String::new(), String::new()),
    };
    let remote = if credential.is_some() && remote_access {
        "true"
    } else {
        "false"
    };
    fill_template(
        template,
        &[
            ("action", action),
            ("workspace", workspace),
            ("credential_blake2s", &digest),
            ("credential", &plain),
            ("remote_access", remote),
        ],
    )
}
