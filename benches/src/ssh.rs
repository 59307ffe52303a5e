//! The OpenSSH baseline of `e2e/exec-*-ssh`: an `sshd` of its own on a free loopback port,
//! with a throwaway host key and a throwaway client key (`authorized_keys` in a temporary
//! directory), and the `ssh` command lines that run a command through it, both with
//! `chacha20-poly1305@openssh.com`, the cipher closest to Tether's.
//!
//! [`Sshd::start`] says why when it cannot run one (no `sshd`, `ssh` or `ssh-keygen`, or the
//! daemon does not come up), so that a bench can skip the SSH side with that message.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tether_testkit::proc::Proc;

use crate::e2e::state_root;

/// The cipher both sides are held to.
pub const CIPHER: &str = "chacha20-poly1305@openssh.com";

/// Where `sshd` is looked for besides `$PATH` (it lives in `sbin`, often not on a user's
/// path).
const SBIN: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// How long the daemon may take to accept its first connection.
const START_WAIT: Duration = Duration::from_secs(10);

/// `program` on `$PATH` or in the `sbin` directories, as an absolute path (`sshd` refuses
/// to re-execute itself from a relative one).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_absolute() && p.is_file())
}

/// A running `sshd` on 127.0.0.1 that accepts one throwaway key for the current user.
#[derive(Debug)]
pub struct Sshd {
    proc: Proc,
    addr: SocketAddr,
    ssh: PathBuf,
    key: PathBuf,
    user: String,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Generates the keys and the configuration, starts `sshd -D -e -f CONFIG` on a free
    /// loopback port, and checks that `ssh ... true` gets through.
    ///
    /// # Errors
    /// Why there is no SSH baseline here: a program missing (install `openssh-server` and
    /// `openssh-client`), or the daemon or a first login failing (its log quoted).
    pub fn start() -> Result<Self> {
        let sshd = find_program("sshd")
            .context("no sshd on $PATH or in /usr/sbin (install openssh-server; .ci/run does)")?;
        let ssh = find_program("ssh").context("no ssh (install openssh-client)")?;
        let keygen =
            find_program("ssh-keygen").context("no ssh-keygen (install openssh-client)")?;
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .context("id -un")?
                .stdout,
        )?
        .trim()
        .to_owned();
        ensure!(!user.is_empty(), "no user name from `id -un`");
        privsep_dir()?;

        let dir = state_root()?;
        let host_key = dir.path().join("host_key");
        let key = dir.path().join("client_key");
        for k in [&host_key, &key] {
            let out = Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "tether-bench", "-f"])
                .arg(k)
                .stdin(Stdio::null())
                .output()
                .context("ssh-keygen")?;
            ensure!(
                out.status.success(),
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized)?;

        let mut last = anyhow!("sshd did not start");
        // The port is free when chosen and taken by sshd a moment later; another process
        // may take it in between, so try a few.
        for _ in 0..3 {
            let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match start_on(&sshd, dir.path(), addr, &host_key, &authorized) {
                Ok(proc) => {
                    let me = Self {
                        proc,
                        addr,
                        ssh: ssh.clone(),
                        key: key.clone(),
                        user: user.clone(),
                        dir,
                    };
                    let out = me.command("true").stdin(Stdio::null()).output()?;
                    ensure!(
                        out.status.success(),
                        "ssh to the bench's sshd failed ({}): {}{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim(),
                        me.log()
                    );
                    return Ok(me);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `ssh -p PORT -i KEY ... USER@127.0.0.1 REMOTE` (no configuration file, no known
    /// hosts, no agent, batch mode, the cipher of [`CIPHER`]), not started.
    pub fn command(&self, remote: &str) -> Command {
        let mut c = Command::new(&self.ssh);
        c.env_remove("SSH_AUTH_SOCK")
            .args(["-F", "/dev/null", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-c",
                CIPHER,
            ])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(remote);
        c
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The daemon's log, for error messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log"))
            .map(|l| format!("\nsshd log:\n{}", l.trim()))
            .unwrap_or_default()
    }
}

/// `/run/sshd`, the directory sshd's unprivileged child chroots into: created (as the
/// service unit would) when missing and this process may.
fn privsep_dir() -> Result<()> {
    let dir = Path::new("/run/sshd");
    if dir.is_dir() || !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Writes the configuration for `addr` and starts the daemon; waits until it accepts.
fn start_on(
    sshd: &Path,
    dir: &Path,
    addr: SocketAddr,
    host_key: &Path,
    authorized: &Path,
) -> Result<Proc> {
    let config = dir.join("sshd_config");
    let log = dir.join("sshd.log");
    let _ = std::fs::remove_file(&log);
    std::fs::write(
        &config,
        format!(
            "ListenAddress {addr}\n\
             HostKey {}\n\
             AuthorizedKeysFile {}\n\
             PidFile none\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             Ciphers {CIPHER}\n\
             LogLevel ERROR\n",
            host_key.display(),
            authorized.display(),
        ),
    )?;
    let mut c = Command::new(sshd);
    c.arg("-f")
        .arg(&config)
        .args(["-D", "-e", "-E"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(c);
    let deadline = Instant::now() + START_WAIT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(proc);
        }
        if let Ok(Some(status)) = proc.0.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("sshd exited ({status}): {}", text.trim());
        }
        if Instant::now() > deadline {
            proc.kill();
            bail!("sshd did not accept on {addr} within {START_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
