//! What one reconfiguration did to each workspace (`LINK-37`): the answer of the actor to
//! [`RelayControl`](crate::RelayControl), and what it returns to the operator.
//!
//! At the bottom of the crate: plain values the actor, the control handle and the
//! connections' inputs share; it refers to none of them.

use std::fmt;

use tether_proto::link::router::WorkspaceConfig;

/// How one workspace changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// It was new.
    Added {
        /// Its remote-access switch.
        remote_access: bool,
    },
    /// It was removed: its links got `GOAWAY AUTH_FAILED`.
    Removed,
    /// It was changed.
    Changed {
        /// Its credential changed: its links got `GOAWAY AUTH_FAILED`.
        credential: bool,
        /// Its remote access was switched to this value (`None`: left as it was). Off: its
        /// links got `GOAWAY REMOTE_ACCESS_DISABLED` (unless the credential changed too).
        remote_access: Option<bool>,
    },
    /// Set to what it already was: nothing ended.
    Unchanged,
}

impl ChangeKind {
    /// How `old` became `new`.
    pub fn between(old: Option<&WorkspaceConfig>, new: Option<&WorkspaceConfig>) -> Self {
        match (old, new) {
            (None, Some(n)) => Self::Added {
                remote_access: n.remote_access,
            },
            (Some(_), None) => Self::Removed,
            (Some(o), Some(n)) if o == n => Self::Unchanged,
            (Some(o), Some(n)) => Self::Changed {
                credential: o.credential_digest != n.credential_digest,
                remote_access: (o.remote_access != n.remote_access).then_some(n.remote_access),
            },
            (None, None) => Self::Unchanged,
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            Self::Added { remote_access } => {
                write!(f, "added (remote access {})", on_off(*remote_access))
            }
            Self::Removed => f.write_str("removed"),
            Self::Changed {
                credential,
                remote_access,
            } => {
                let mut parts = Vec::new();
                if *credential {
                    parts.push("credential changed".to_owned());
                }
                if let Some(on) = remote_access {
                    parts.push(format!("remote access switched {}", on_off(*on)));
                }
                f.write_str(&parts.join(", "))
            }
            Self::Unchanged => f.write_str("unchanged"),
        }
    }
}

/// What one reconfiguration did to one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkspaceChange {
    /// The workspace id.
    pub workspace: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// How many of its links the change ended.
    pub links_ended: usize,
}

impl fmt::Display for WorkspaceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workspace {:?}: {}; {} link(s) ended",
            self.workspace, self.kind, self.links_ended
        )
    }
}

impl WorkspaceChange {
    pub(crate) fn new(workspace: String, kind: ChangeKind, links_ended: usize) -> Self {
        Self {
            workspace,
            kind,
            links_ended,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn kinds_and_their_text() {
        let a = WorkspaceConfig::new(b"0123456789abcdef", true);
        let b = WorkspaceConfig::new(b"fedcba9876543210", true);
        let a_off = WorkspaceConfig::new(b"0123456789abcdef", false);
        let b_off = WorkspaceConfig::new(b"fedcba9876543210", false);
        assert_eq!(
            ChangeKind::between(None, Some(&a_off)),
            ChangeKind::Added {
                remote_access: false
            }
        );
        assert_eq!(ChangeKind::between(Some(&a), None), ChangeKind::Removed);
        assert_eq!(
            ChangeKind::between(Some(&a), Some(&a)),
            ChangeKind::Unchanged
        );
        assert_eq!(
            ChangeKind::between(Some(&a), Some(&b_off)).to_string(),
            "credential changed, remote access switched off"
        );
        assert_eq!(
            ChangeKind::between(Some(&a_off), Some(&a)).to_string(),
            "remote access switched on"
        );
        assert_eq!(
            ChangeKind::between(Some(&a), Some(&b)),
            ChangeKind::Changed {
                credential: true,
                remote_access: None
            }
        );
        let c = WorkspaceChange::new("acme".into(), ChangeKind::Removed, 3);
        assert_eq!(
            c.to_string(),
            "workspace \"acme\": removed; 3 link(s) ended"
        );
    }
}
