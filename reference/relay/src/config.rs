//! The relay server's configuration: listen address, workspaces, TLS, limits.
//!
//! Workspaces come from a TOML file:
//!
//! ```toml
//! [[workspace]]
//! id = "acme"
//! credential_blake2s = "…64 hex digits: BLAKE2s-256 of the credential…"
//! remote_access = true          # optional, default true
//!
//! [[workspace]]
//! id = "demo"
//! credential = "a plain credential, 16 to 255 bytes"   # quick starts only
//! ```
//!
//! or from `NAME=CREDENTIAL` pairs. Either way the relay keeps only the credential's
//! BLAKE2s-256 digest (`LINK-10`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tether_proto::link::frame::{MAX_CREDENTIAL_LEN, MIN_CREDENTIAL_LEN};
use tether_proto::link::router::{RelayLimits, WorkspaceConfig};

use crate::error::RelayError;

/// PEM files of the relay's TLS certificate chain and private key (`wss://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything [`crate::RelayServer::bind`] needs.
#[derive(Clone, Debug)]
pub struct RelayServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Workspace id → credential digest and remote-access switch.
    pub workspaces: BTreeMap<String, WorkspaceConfig>,
    /// TLS certificate and key; `None` serves plain `ws://`.
    pub tls: Option<TlsFiles>,
    /// Allow plain `ws://` on an address that is not loopback (`LINK-2`).
    pub insecure: bool,
    /// The limits the routing core enforces (tests shrink them).
    pub limits: RelayLimits,
    /// How long a closing link may take to flush its last frames and close.
    pub flush_timeout: Duration,
    /// Most connections open at once from one client network address (`SEC-17`); a
    /// connection beyond it is closed as soon as it is accepted, before TLS or the
    /// WebSocket upgrade. `None`: no bound.
    pub max_links_per_address: Option<usize>,
}

impl RelayServerConfig {
    /// A relay on `listen` with no workspaces, default limits, plain `ws://`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            workspaces: BTreeMap::new(),
            tls: None,
            insecure: false,
            limits: RelayLimits::default(),
            flush_timeout: Duration::from_secs(2),
            max_links_per_address: None,
        }
    }

    /// Bounds the connections open at once from one client address (`SEC-17`); `None`
    /// removes the bound.
    #[must_use]
    pub fn with_max_links_per_address(mut self, max: Option<usize>) -> Self {
        self.max_links_per_address = max;
        self
    }

    /// Adds a workspace with its plain credential (stored as its digest).
    ///
    /// # Errors
    /// [`RelayError::Config`] if the id or credential is invalid or the id is taken.
    pub fn with_workspace(
        mut self,
        id: &str,
        credential: &[u8],
        remote_access: bool,
    ) -> Result<Self, RelayError> {
        check_credential(id, credential)?;
        self.insert(id, WorkspaceConfig::new(credential, remote_access))?;
        Ok(self)
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves `wss://` with these PEM files.
    #[must_use]
    pub fn with_tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Adds a workspace from a `NAME=CREDENTIAL` pair (remote access on).
    ///
    /// # Errors
    /// [`RelayError::Config`] if there is no `=`, or the id or credential is invalid or the
    /// id is taken. The message never contains the credential.
    pub fn add_workspace_pair(&mut self, pair: &str) -> Result<(), RelayError> {
        let Some((id, credential)) = pair.split_once('=') else {
            return Err(RelayError::Config(
                "a workspace must be given as NAME=CREDENTIAL".into(),
            ));
        };
        check_credential(id, credential.as_bytes())?;
        self.insert(id, WorkspaceConfig::new(credential.as_bytes(), true))
    }

    /// Adds the workspaces of a TOML document (see the module docs).
    ///
    /// # Errors
    /// [`RelayError::Config`] if the document does not parse, has unknown keys, or a
    /// workspace is invalid or given twice.
    pub fn add_toml(&mut self, text: &str) -> Result<(), RelayError> {
        let file: TomlFile = toml::from_str(text)
            .map_err(|e| RelayError::Config(format!("relay TOML: {}", e.message())))?;
        for ws in file.workspace {
            let digest = match (&ws.credential_blake2s, &ws.credential) {
                (Some(hex_digest), None) => parse_digest(&ws.id, hex_digest)?,
                (None, Some(credential)) => {
                    check_credential(&ws.id, credential.as_bytes())?;
                    tether_proto::link::router::credential_digest(credential.as_bytes())
                }
                _ => {
                    return Err(RelayError::Config(format!(
                        "workspace {:?}: give exactly one of credential_blake2s and credential",
                        ws.id
                    )));
                }
            };
            self.insert(
                &ws.id,
                WorkspaceConfig {
                    credential_digest: digest,
                    remote_access: ws.remote_access,
                },
            )?;
        }
        Ok(())
    }

    /// Adds the workspaces of a TOML file.
    ///
    /// # Errors
    /// [`RelayError::Io`] if the file cannot be read, else as [`Self::add_toml`].
    pub fn add_toml_file(&mut self, path: &Path) -> Result<(), RelayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RelayError::io(format!("reading {}", path.display()), e))?;
        self.add_toml(&text)
    }

    fn insert(&mut self, id: &str, workspace: WorkspaceConfig) -> Result<(), RelayError> {
        check_workspace_id(id)?;
        if self.workspaces.contains_key(id) {
            return Err(RelayError::Config(format!(
                "workspace {id:?} is configured twice"
            )));
        }
        self.workspaces.insert(id.to_owned(), workspace);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    workspace: Vec<TomlWorkspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlWorkspace {
    id: String,
    credential_blake2s: Option<String>,
    credential: Option<String>,
    #[serde(default = "default_remote_access")]
    remote_access: bool,
}

fn default_remote_access() -> bool {
    true
}

/// Workspace ids are 1–64 bytes of `[a-z0-9._-]` (`LINK-32`).
pub(crate) fn check_workspace_id(id: &str) -> Result<(), RelayError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RelayError::Config(format!(
            "workspace id {id:?} must be 1 to 64 characters of a-z 0-9 . _ - (LINK-32)"
        )))
    }
}

/// Credentials are 16–255 bytes (the `HELLO` field, `LINK-10`).
fn check_credential(id: &str, credential: &[u8]) -> Result<(), RelayError> {
    if (MIN_CREDENTIAL_LEN..=MAX_CREDENTIAL_LEN).contains(&credential.len()) {
        Ok(())
    } else {
        Err(RelayError::Config(format!(
            "workspace {id:?}: the credential must be {MIN_CREDENTIAL_LEN} to \
             {MAX_CREDENTIAL_LEN} bytes, got {}",
            credential.len()
        )))
    }
}

fn parse_digest(id: &str, text: &str) -> Result<[u8; 32], RelayError> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest).map_err(|_| {
        RelayError::Config(format!(
            "workspace {id:?}: credential_blake2s must be 64 hex digits (BLAKE2s-256)"
        ))
    })?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use tether_proto::link::router::credential_digest;

    fn config() -> RelayServerConfig {
        RelayServerConfig::new("127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn toml_with_digest_and_plain_credential() {
        let digest = hex::encode(credential_digest(b"0123456789abcdef"));
        let text = format!(
            "[[workspace]]\nid = \"acme\"\ncredential_blake2s = \"{digest}\"\n\
             remote_access = false\n\n[[workspace]]\nid = \"demo\"\n\
             credential = \"fedcba9876543210\"\n"
        );
        let mut c = config();
        c.add_toml(&text).unwrap();
        let acme = &c.workspaces["acme"];
        assert_eq!(
            acme.credential_digest,
            credential_digest(b"0123456789abcdef")
        );
        assert!(!acme.remote_access);
        let demo = &c.workspaces["demo"];
        assert_eq!(
            demo.credential_digest,
            credential_digest(b"fedcba9876543210")
        );
        assert!(demo.remote_access);
    }

    #[test]
    fn toml_refuses_both_neither_unknown_and_bad_hex() {
        for text in [
            "[[workspace]]\nid = \"a\"\n",
            "[[workspace]]\nid = \"a\"\ncredential = \"0123456789abcdef\"\ncredential_blake2s = \"00\"\n",
            "[[workspace]]\nid = \"a\"\ncredential = \"0123456789abcdef\"\ncolour = 1\n",
            "[[workspace]]\nid = \"a\"\ncredential_blake2s = \"zz\"\n",
            "[[workspace]]\nid = \"A\"\ncredential = \"0123456789abcdef\"\n",
            "[[workspace]]\nid = \"a\"\ncredential = \"short\"\n",
        ] {
            assert!(
                matches!(config().add_toml(text), Err(RelayError::Config(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn pairs_keep_only_the_digest_and_never_echo_the_credential() {
        let mut c = config();
        c.add_workspace_pair("acme=0123456789abcdef").unwrap();
        assert_eq!(
            c.workspaces["acme"].credential_digest,
            credential_digest(b"0123456789abcdef")
        );
        let e = c.add_workspace_pair("acme=0123456789abcdef").unwrap_err();
        assert!(e.to_string().contains("twice"));
        let e = c.add_workspace_pair("other=tooshortsecret").unwrap_err();
        assert!(!e.to_string().contains("tooshortsecret"));
        assert!(c.add_workspace_pair("no-equals-sign").is_err());
    }
}
