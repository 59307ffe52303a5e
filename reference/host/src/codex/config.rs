//! How the host starts Codex: which binary, with which arguments, environment and
//! working directory, and the time limits of the connection.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::types::CodexError;

/// The environment variable that names the Codex binary when the host configuration
/// names none.
pub const CODEX_BIN_ENV: &str = "TETHER_CODEX_BIN";

/// The longest line read from Codex's stdout (16 MiB); a longer one is reported as
/// [`CodexEvent::Malformed`](super::CodexEvent::Malformed) and skipped.
pub const MAX_LINE: usize = 16 << 20;

/// Which environment the Codex process starts from, before [`CodexConfig::env_vars`]
/// are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodexEnv {
    /// The host's own environment, whole: Codex finds the user's `HOME` and
    /// `CODEX_HOME`, so the account of their own `codex login` (and their
    /// `config.toml`) is used. The default.
    #[default]
    Inherit,
    /// Only the host's `PATH` (Codex's launcher needs `node`), and `LANG=C.UTF-8`;
    /// everything else must come from [`CodexConfig::env_vars`]. For a private
    /// `HOME`/`CODEX_HOME`, see [`CodexConfig::private_home`].
    Isolated,
}

/// How to run `codex app-server` (JSON-RPC as JSON lines on stdio) for the host.
///
/// The command is `BIN app-server ARGS…`, run in [`cwd`](CodexConfig::cwd), in a process
/// group of its own.
#[derive(Debug, Clone)]
pub struct CodexConfig {
    /// The Codex binary named by the host configuration. `None`: `$TETHER_CODEX_BIN`,
    /// else the first `codex` on `PATH` ([`CodexConfig::resolve_bin`]).
    pub bin: Option<PathBuf>,
    /// Arguments after `app-server` (for instance `-c key=value` overrides).
    pub args: Vec<OsString>,
    /// The environment Codex starts from.
    pub env: CodexEnv,
    /// Variables set on top of [`env`](CodexConfig::env), in order (a later one wins).
    pub env_vars: Vec<(OsString, OsString)>,
    /// The working directory of the process: an existing absolute directory, never the
    /// system temporary directory (Codex leaves files such as `.git` there).
    pub cwd: PathBuf,
    /// The bound on the `initialize` handshake ([`CodexAppServer::spawn`](super::CodexAppServer::spawn)).
    pub handshake_timeout: Duration,
    /// The bound on each request of [`CodexAppServer::request`](super::CodexAppServer::request)
    /// (from writing it to its response), and on writing a notification or response.
    pub request_timeout: Duration,
    /// How many events the event channel holds before reading Codex's stdout waits for
    /// the host to take some (at least 64).
    pub event_capacity: usize,
    /// The longest line read from Codex's stdout ([`MAX_LINE`] by default).
    pub max_line: usize,
}

impl CodexConfig {
    /// The defaults, with working directory `cwd`: binary from `$TETHER_CODEX_BIN` or
    /// `PATH`, no extra arguments, the host's environment, 30 s for the handshake, 60 s
    /// per request, 1024 events, lines up to [`MAX_LINE`].
    pub fn new(cwd: impl Into<PathBuf>) -> Self {
        Self {
            bin: None,
            args: Vec::new(),
            env: CodexEnv::Inherit,
            env_vars: Vec::new(),
            cwd: cwd.into(),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            event_capacity: 1024,
            max_line: MAX_LINE,
        }
    }

    /// Sets the binary (as the host configuration names it).
    #[must_use]
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Appends an argument after `app-server`.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets environment variable `key` to `value` for Codex.
    #[must_use]
    pub fn env_var(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env_vars.push((key.into(), value.into()));
        self
    }

    /// An [`Isolated`](CodexEnv::Isolated) environment with `HOME`, `CODEX_HOME` (which
    /// holds `config.toml`, sessions and credentials) and `TMPDIR` set to the given
    /// directories: a Codex that sees none of the user's own configuration or login.
    #[must_use]
    pub fn private_home(
        mut self,
        home: impl AsRef<Path>,
        codex_home: impl AsRef<Path>,
        tmp: impl AsRef<Path>,
    ) -> Self {
        self.env = CodexEnv::Isolated;
        self = self
            .env_var("HOME", home.as_ref())
            .env_var("CODEX_HOME", codex_home.as_ref())
            .env_var("TMPDIR", tmp.as_ref());
        self
    }

    /// The Codex binary: [`bin`](CodexConfig::bin) if set (it must be a file), else
    /// `$TETHER_CODEX_BIN` if set (it must be a file), else the first executable `codex`
    /// on the host's `PATH`. The error ([`CodexError::NoBinary`]) names all three.
    pub fn resolve_bin(&self) -> Result<PathBuf, CodexError> {
        resolve_bin(
            self.bin.as_deref(),
            std::env::var_os(CODEX_BIN_ENV).as_deref(),
            std::env::var_os("PATH").as_deref(),
        )
    }

    /// Checks [`cwd`](CodexConfig::cwd): absolute, an existing directory, and not the
    /// system temporary directory (nor `/tmp`).
    pub fn check_cwd(&self) -> Result<(), CodexError> {
        let bad = |reason: &'static str| CodexError::BadWorkDir {
            cwd: self.cwd.clone(),
            reason,
        };
        if !self.cwd.is_absolute() {
            return Err(bad("it is not an absolute path"));
        }
        if !self.cwd.is_dir() {
            return Err(bad("it is not an existing directory"));
        }
        let real = std::fs::canonicalize(&self.cwd).unwrap_or_else(|_| self.cwd.clone());
        let temp = std::env::temp_dir();
        let temp = std::fs::canonicalize(&temp).unwrap_or(temp);
        if real == temp || real == Path::new("/tmp") {
            return Err(bad(
                "it is the system temporary directory, where Codex would leave its files",
            ));
        }
        Ok(())
    }
}

/// [`CodexConfig::resolve_bin`] with its inputs given: the configured binary, the value
/// of `$TETHER_CODEX_BIN` and of `PATH`.
pub(crate) fn resolve_bin(
    configured: Option<&Path>,
    env_bin: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<PathBuf, CodexError> {
    if let Some(bin) = configured {
        return if bin.is_file() {
            Ok(bin.to_path_buf())
        } else {
            Err(CodexError::NoBinary {
                detail: format!(
                    "the host configuration names {} as the Codex binary, which is not a file",
                    bin.display()
                ),
            })
        };
    }
    if let Some(bin) = env_bin.filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(CodexError::NoBinary {
                detail: format!(
                    "the host configuration names no Codex binary and \
                     {CODEX_BIN_ENV}={} is not a file",
                    bin.display()
                ),
            })
        };
    }
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let candidate = dir.join("codex");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(CodexError::NoBinary {
        detail: format!(
            "the host configuration names no Codex binary, {CODEX_BIN_ENV} is not set, and \
             there is no `codex` on PATH (install it with `npm install -g @openai/codex`, \
             or set one of the first two)"
        ),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn detail(e: CodexError) -> String {
        match e {
            CodexError::NoBinary { detail } => detail,
            other => panic!("not NoBinary: {other}"),
        }
    }

    #[test]
    fn no_binary_names_all_three_places() {
        let d = detail(resolve_bin(None, None, Some(OsStr::new("/nonexistent-dir"))).unwrap_err());
        assert!(d.contains("host configuration"), "{d}");
        assert!(d.contains(CODEX_BIN_ENV), "{d}");
        assert!(d.contains("PATH"), "{d}");
    }

    #[test]
    fn configured_binary_wins_and_must_exist() {
        let sh = Path::new("/bin/sh");
        assert_eq!(
            resolve_bin(Some(sh), Some(OsStr::new("/nonexistent")), None).unwrap(),
            sh
        );
        let d = detail(resolve_bin(Some(Path::new("/nonexistent/codex")), None, None).unwrap_err());
        assert!(d.contains("/nonexistent/codex"), "{d}");
        let env = OsStr::new("/bin/sh");
        assert_eq!(resolve_bin(None, Some(env), None).unwrap(), sh);
        let d = detail(resolve_bin(None, Some(OsStr::new("/nonexistent/x")), None).unwrap_err());
        assert!(
            d.contains(CODEX_BIN_ENV) && d.contains("/nonexistent/x"),
            "{d}"
        );
    }

    #[test]
    fn temp_dir_and_relative_dirs_are_refused() {
        for cwd in [
            std::env::temp_dir(),
            PathBuf::from("/tmp"),
            PathBuf::from("rel"),
        ] {
            let err = CodexConfig::new(&cwd).check_cwd().unwrap_err();
            assert!(
                matches!(err, CodexError::BadWorkDir { .. }),
                "{cwd:?}: {err}"
            );
        }
        CodexConfig::new(env!("CARGO_MANIFEST_DIR"))
            .check_cwd()
            .unwrap();
    }
}
