//! Reconfiguring a running relay: add, change and remove workspaces (`LINK-37`).
//!
//! A [`RelayControl`] is a handle on the actor that owns the routing core. Each change goes
//! through [`Relay::set_workspace`](tether_proto::link::router::Relay::set_workspace), so
//! it applies to the links already open, not only to new ones: changing or removing a
//! workspace's credential ends its links with `GOAWAY AUTH_FAILED`, switching its remote
//! access off ends them with `GOAWAY REMOTE_ACCESS_DISABLED`, and a change that leaves the
//! credential and the switch as they were ends nothing.

use std::collections::BTreeMap;
use std::fmt;

use tether_proto::link::router::WorkspaceConfig;
use tokio::sync::{mpsc, oneshot};

use crate::RelayError;
use crate::conn::Input;

/// What the actor is asked to apply.
pub(crate) enum Update {
    /// Set (`Some`) or remove (`None`) one workspace.
    One(String, Option<WorkspaceConfig>),
    /// Make the set of workspaces exactly this one: add, change and remove what differs.
    Replace(BTreeMap<String, WorkspaceConfig>),
}

/// A handle that reconfigures a running relay; cheap to clone. Get one from
/// [`crate::RelayServer::control`] or [`crate::RelayHandle::control`].
#[derive(Clone, Debug)]
pub struct RelayControl {
    inputs: mpsc::Sender<Input>,
}

impl RelayControl {
    pub(crate) fn new(inputs: mpsc::Sender<Input>) -> Self {
        Self { inputs }
    }

    /// Sets workspace `id` to `workspace` (adding it if it is new), or removes it (`None`),
    /// and ends the links the change revokes (`LINK-37`). Returns once the relay has
    /// applied it: the `GOAWAY`s are queued, and a `HELLO` read after this is checked
    /// against the new configuration.
    ///
    /// # Errors
    /// [`RelayError::Config`] if `id` breaks the workspace rule (`LINK-32`);
    /// [`RelayError::Stopped`] if the relay is no longer running.
    pub async fn set_workspace(
        &self,
        id: &str,
        workspace: Option<WorkspaceConfig>,
    ) -> Result<WorkspaceChange, RelayError> {
        crate::config::check_workspace_id(id)?;
        let mut changes = self.apply(Update::One(id.to_owned(), workspace)).await?;
        changes.pop().ok_or(RelayError::Stopped)
    }

    /// Makes `workspaces` the relay's whole set of workspaces: those it lacks are added,
    /// those that differ are changed, those it does not name are removed (`LINK-37`).
    /// Returns what changed, by workspace id; workspaces that stayed as they were are not
    /// listed.
    ///
    /// # Errors
    /// [`RelayError::Config`] if an id breaks the workspace rule (`LINK-32`): nothing is
    /// applied then. [`RelayError::Stopped`] if the relay is no longer running.
    pub async fn replace_workspaces(
        &self,
        workspaces: BTreeMap<String, WorkspaceConfig>,
    ) -> Result<Vec<WorkspaceChange>, RelayError> {
        for id in workspaces.keys() {
            crate::config::check_workspace_id(id)?;
        }
        self.apply(Update::Replace(workspaces)).await
    }

    async fn apply(&self, update: Update) -> Result<Vec<WorkspaceChange>, RelayError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::Reconfigure { update, reply })
            .await
            .map_err(|_| RelayError::Stopped)?;
        answer.await.map_err(|_| RelayError::Stopped)
    }
}

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
