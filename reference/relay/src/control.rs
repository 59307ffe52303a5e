//! Reconfiguring a running relay: add, change and remove workspaces (`LINK-37`).
//!
//! A [`RelayControl`] is a handle on the actor that owns the routing core. Each change goes
//! through [`Relay::set_workspace`](tether_proto::link::router::Relay::set_workspace), so
//! it applies to the links already open, not only to new ones: changing or removing a
//! workspace's credential ends its links with `GOAWAY AUTH_FAILED`, switching its remote
//! access off ends them with `GOAWAY REMOTE_ACCESS_DISABLED`, and a change that leaves the
//! credential and the switch as they were ends nothing.

use std::collections::BTreeMap;

use tether_proto::link::router::WorkspaceConfig;
use tokio::sync::{mpsc, oneshot};

use crate::change::WorkspaceChange;
use crate::error::RelayError;
use crate::input::{Input, Update};

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
