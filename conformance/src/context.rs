//! What a case is given: the target under test and a traffic log.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::case::CaseResult;
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
    ) -> crate::host::BoxFuture<'_, Result<(), String>>;
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
    ) -> crate::host::BoxFuture<'_, Result<(), String>> {
        let cmd = reconfigure_command(&self.reconfigure_cmd, workspace, credential, remote_access);
        Box::pin(async move { crate::host::run_shell(&cmd).await.map(|_| ()) })
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
    crate::host::fill_template(
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
    Host(Arc<crate::host::HostTarget>),
}

impl Target {
    /// What kind of target this is.
    pub fn kind(&self) -> crate::case::TargetKind {
        match self {
            Self::Relay(_) => crate::case::TargetKind::Relay,
            Self::Host(_) => crate::case::TargetKind::Host,
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
    pub fn runs(&self, kind: crate::case::TargetKind) -> bool {
        match self {
            Self::Relay(_) => kind == crate::case::TargetKind::Relay,
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
