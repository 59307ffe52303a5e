//! What a case is given: the target under test (a relay, or a host with the relay it
//! joined), its credentials, and a traffic log.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use rustls::pki_types::CertificateDer;

use crate::admin::{HostAdmin, RelayAdmin};
use crate::host::device::PairedDevice;
use crate::outcome::{CaseResult, Res, TargetKind, skip};
use crate::traffic::TrafficLog;

/// A workspace and its credential, as given on the command line (`NAME=CREDENTIAL`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The workspace id (`LINK-32`).
    pub workspace: String,
    /// The credential's bytes (the UTF-8 of the text given, 16–255 bytes, `LINK-10`).
    pub credential: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of logs and reports (SEC-2).
        f.debug_struct("Credential")
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

impl FromStr for Credential {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, cred) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=CREDENTIAL, got {:?}", redact(s)))?;
        if !tether_proto::token::validate_workspace(name) {
            return Err(format!(
                "workspace id {name:?} breaks the workspace rule (1-64 bytes of a-z 0-9 . _ -)"
            ));
        }
        let len = cred.len();
        if !(16..=255).contains(&len) {
            return Err(format!(
                "credential for {name:?} is {len} bytes; LINK-10 needs 16 to 255"
            ));
        }
        Ok(Self {
            workspace: name.to_owned(),
            credential: cred.as_bytes().to_vec(),
        })
    }
}

fn redact(s: &str) -> String {
    match s.split_once('=') {
        Some((a, _)) => format!("{a}=…"),
        None if s.len() > 8 => "…".to_owned(),
        None => s.to_owned(),
    }
}

/// How the runner connects to a `wss://` target.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Extra trust anchors (`--ca-cert PEM`), added to the web PKI roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Accept any certificate, and allow plain `ws://` to a non-loopback address
    /// (`--insecure`). For test set-ups only.
    pub insecure: bool,
}

impl TlsOptions {
    /// Reads the certificates of a PEM file as extra trust anchors.
    ///
    /// # Errors
    /// The file cannot be read or holds no certificate.
    pub fn with_ca_file(mut self, path: &std::path::Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs: Result<Vec<_>, _> =
            rustls_pemfile::certs(&mut std::io::Cursor::new(data)).collect();
        let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate found", path.display()));
        }
        self.ca_certs.extend(certs);
        Ok(self)
    }
}

/// A relay under test.
#[derive(Clone, Debug)]
pub struct RelayTarget {
    /// `ws://` or `wss://` URL of the relay.
    pub url: String,
    /// A workspace the relay serves, with remote access on.
    pub workspace: Credential,
    /// A second workspace of the same relay, for cross-workspace cases (`LINK-17`).
    pub other_workspace: Option<Credential>,
    /// A workspace with remote access switched off, for `LINK-11`.
    pub remote_access_off: Option<Credential>,
    /// TLS settings.
    pub tls: TlsOptions,
    /// How the runner reconfigures the relay while it runs (`LINK-37`); without it the
    /// `LINK-37` cases are skipped.
    pub admin: Option<Arc<dyn RelayAdmin>>,
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
    pub(crate) shared: tokio::sync::Mutex<Option<PairedDevice>>,
}

impl fmt::Debug for HostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostTarget")
            .field("relay", &self.relay.url)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
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
    /// [`paired`](crate::host::paired())). Ages from [`MIN_TESTABLE_INACTIVE`](crate::host::MIN_TESTABLE_INACTIVE) to [`MAX_TESTABLE_INACTIVE`](crate::host::MAX_TESTABLE_INACTIVE) can be
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

/// The implementation under test.
#[derive(Clone, Debug)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "one target per run, held in an Arc: its size does not matter"
)]
pub enum Target {
    /// A relay.
    Relay(RelayTarget),
    /// A host, reached through the relay it joined. Relay cases can run against that
    /// relay too.
    Host(Arc<HostTarget>),
}

impl Target {
    /// What kind of target this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            Self::Relay(_) => TargetKind::Relay,
            Self::Host(_) => TargetKind::Host,
        }
    }

    /// A short description for reports (`relay ws://127.0.0.1:7400/`).
    pub fn describe(&self) -> String {
        match self {
            Self::Relay(r) => format!("relay {}", r.url),
            Self::Host(h) => h.description.clone(),
        }
    }

    /// The URL under test.
    pub fn url(&self) -> &str {
        match self {
            Self::Relay(r) => &r.url,
            Self::Host(h) => &h.relay.url,
        }
    }

    /// Whether cases of `kind` can run against this target: a relay target runs relay
    /// cases; a host target runs host cases, and relay cases against its relay.
    pub fn runs(&self, kind: TargetKind) -> bool {
        match self {
            Self::Relay(_) => kind == TargetKind::Relay,
            Self::Host(_) => true,
        }
    }
}

/// What a case body gets.
#[derive(Debug)]
pub struct Context {
    /// The case's id.
    pub case_id: &'static str,
    /// The target under test.
    pub target: Arc<Target>,
    /// Every frame the case sends and receives.
    pub log: TrafficLog,
}

impl Context {
    /// The relay under test, or the relay the host under test joined.
    ///
    /// # Errors
    /// None today; kept fallible for targets without a relay.
    pub fn relay(&self) -> CaseResult<&RelayTarget> {
        match self.target.as_ref() {
            Target::Relay(r) => Ok(r),
            Target::Host(h) => Ok(&h.relay),
        }
    }
}

/// The host under test of a context.
///
/// # Errors
/// A skip when the target is not a host.
pub fn host_target(cx: &Context) -> Res<&HostTarget> {
    match cx.target.as_ref() {
        Target::Host(h) => Ok(h),
        Target::Relay(_) => skip("no host under test"),
    }
}
