//! Relay cases of reconfiguration while the relay runs (`spec/03` section 3.10, `LINK-37`):
//! a changed credential, remote access switched off or a removed workspace ends the links
//! they revoke within 1 s, and nothing else.
//!
//! Each case works on a workspace of its own, added through the operator's
//! [`RelayAdmin`] and removed at its end; without an admin they are
//! skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};

use crate::admin::RelayAdmin;
use crate::case::{Case, case};
use crate::cases::steps::relay::{
    data_crosses, first_frame_gets, hello_bytes, pass, pattern, start_registration,
};
use crate::context::{Context, Credential};
use crate::host::BoxFuture;
use crate::link::{
    HostKey, Link, controller, controller_hello, host, host_hello, open_session, random_bytes,
    random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The reconfiguration cases, in spec order.
pub const CASES: &[Case] = &[
    LINK37_CREDENTIAL_CHANGED,
    LINK37_REMOTE_ACCESS_OFF,
    LINK37_WORKSPACE_REMOVED,
    LINK37_OTHERS_UNTOUCHED,
    LINK37_UNCHANGED,
];

// ----- LINK-37 ---------------------------------------------------------------------------

/// The `LINK-37` bound: a reconfiguration ends the links it revokes within 1 s.
const LINK37_BOUND: Duration = Duration::from_secs(1);

/// How long the runner waits for those `GOAWAY`s: the bound plus 2 s for scheduling on a
/// loaded test machine. Slower answers fail; answers past the bound are noted in the log.
const LINK37_WAIT: Duration = Duration::from_secs(3);

/// A workspace of the case's own on the relay under test (`LINK-37`), so that changing it
/// disturbs nothing else. [`Scratch::remove`] takes it away at the end of the case; if the
/// case ends another way (a failure, its time limit), dropping it removes it in the
/// background.
struct Scratch {
    admin: Arc<dyn RelayAdmin>,
    cred: Credential,
    present: bool,
}

impl Scratch {
    /// Adds a fresh workspace with remote access on. `Ok(None)`: the target gave no way to
    /// reconfigure the relay.
    async fn add(cx: &Context) -> CaseResult<Option<Self>> {
        let Some(admin) = cx.relay()?.admin.clone() else {
            return Ok(None);
        };
        let cred = Credential {
            workspace: format!("tether-conf-{}", hex::encode(random_bytes::<6>())),
            credential: fresh_credential(),
        };
        let mut scratch = Self {
            admin,
            cred,
            present: true,
        };
        let c = scratch.cred.credential.clone();
        scratch.set(cx, Some(c), true).await?;
        Ok(Some(scratch))
    }

    /// Sets the workspace's credential (`None`: removes it) and remote access, and returns
    /// when the relay says it has applied the change.
    async fn set(
        &mut self,
        cx: &Context,
        credential: Option<Vec<u8>>,
        remote_access: bool,
    ) -> CaseResult<Instant> {
        let what = match &credential {
            Some(c) if *c == self.cred.credential => {
                format!(
                    "credential unchanged, remote access {}",
                    on_off(remote_access)
                )
            }
            Some(_) => format!("a new credential, remote access {}", on_off(remote_access)),
            None => "removed".to_owned(),
        };
        cx.log.note(
            "runner",
            format!("reconfiguring workspace {:?}: {what}", self.cred.workspace),
        );
        self.admin
            .set_workspace(&self.cred.workspace, credential.as_deref(), remote_access)
            .await
            .map_err(|e| CaseError(format!("reconfiguring the relay failed: {e}")))?;
        let applied = Instant::now();
        match credential {
            Some(c) => {
                self.cred.credential = c;
                self.present = true;
            }
            None => self.present = false,
        }
        Ok(applied)
    }

    /// Removes the workspace (if it is still there).
    async fn remove(mut self, cx: &Context) -> CaseResult<()> {
        if self.present {
            self.set(cx, None, false).await?;
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.present {
            return;
        }
        let admin = self.admin.clone();
        let workspace = self.cred.workspace.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = admin.set_workspace(&workspace, None, false).await;
            });
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// 32 hex digits: a credential (`LINK-10`) that needs no shell quoting.
fn fresh_credential() -> Vec<u8> {
    hex::encode(random_bytes::<16>()).into_bytes()
}

fn no_admin() -> CaseResult<Outcome> {
    Ok(Outcome::Skip(
        "needs a way to reconfigure the relay while it runs: give --reconfigure-cmd".to_owned(),
    ))
}

/// Runs `body` with a scratch workspace, then removes it, whatever the body returned.
async fn with_scratch<F>(cx: Arc<Context>, body: F) -> CaseResult<Outcome>
where
    F: for<'a> FnOnce(&'a Context, &'a mut Scratch) -> BoxFuture<'a, CaseResult<()>>,
{
    let Some(mut scratch) = Scratch::add(&cx).await? else {
        return no_admin();
    };
    let result = body(&cx, &mut scratch).await;
    let removed = scratch.remove(&cx).await;
    result?;
    removed?;
    pass()
}

/// After a reconfiguration applied at `applied`: the link gets `GOAWAY code` within the
/// `LINK-37` bound and ends (`LINK-27`). A `CLOSE PEER_GONE` for `session` may come first
/// (the session's other link may have been ended first, `LINK-21`).
async fn expect_revoked(
    cx: &Context,
    l: &mut Link,
    code: CloseCode,
    session: Option<SessionId>,
    applied: Instant,
) -> CaseResult<()> {
    let deadline = applied + LINK37_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match l.recv(left).await {
            Ok(f) => f,
            Err(e) => {
                return fail(format!(
                    "{}: expected GOAWAY {code} within {} s of the reconfiguration (LINK-37); {e}",
                    l.name(),
                    LINK37_BOUND.as_secs()
                ));
            }
        };
        match frame {
            RelayFrame::Close {
                session: s,
                code: c,
            } if Some(s) == session && c == CloseCode::PEER_GONE => {}
            RelayFrame::GoAway { code: got, .. } if got == code => break,
            other => {
                return fail(format!(
                    "{}: expected GOAWAY {code} after the reconfiguration (LINK-37), got {}",
                    l.name(),
                    describe(&other)
                ));
            }
        }
    }
    let took = applied.elapsed();
    cx.log.note(
        l.name(),
        format!(
            "GOAWAY {code} {:.0} ms after the reconfiguration",
            took.as_secs_f64() * 1000.0
        ),
    );
    if took > LINK37_BOUND {
        cx.log.note(
            l.name(),
            format!(
                "that is past the {} s bound of LINK-37",
                LINK37_BOUND.as_secs()
            ),
        );
    }
    l.expect_end_after_goaway().await
}

/// The links a reconfiguration must end: a host and a controller of `cred` with a session
/// open between them (DATA checked both ways), and a host still authenticating (its
/// `HOST_CHALLENGE` received, no `HOST_PROOF` sent).
struct Victims {
    host: Link,
    ctl: Link,
    authenticating: Link,
    session: SessionId,
}

async fn victims(cx: &Context, cred: &Credential) -> CaseResult<Victims> {
    let key = HostKey::random();
    let mut host = host(cx, "host", cred, &key).await?;
    let mut ctl = controller(cx, "ctl", cred).await?;
    let session = random_session();
    open_session(&mut ctl, &mut host, &key, session).await?;
    data_crosses(&mut ctl, &mut host, session, pattern(1, 300)).await?;
    data_crosses(&mut host, &mut ctl, session, pattern(2, 300)).await?;
    let (authenticating, _reg, _msg2) =
        start_registration(cx, "host-authenticating", cred, &HostKey::random()).await?;
    Ok(Victims {
        host,
        ctl,
        authenticating,
        session,
    })
}

impl Victims {
    async fn expect_all_revoked(
        mut self,
        cx: &Context,
        code: CloseCode,
        applied: Instant,
    ) -> CaseResult<()> {
        let s = Some(self.session);
        expect_revoked(cx, &mut self.host, code, s, applied).await?;
        expect_revoked(cx, &mut self.ctl, code, s, applied).await?;
        expect_revoked(cx, &mut self.authenticating, code, None, applied).await
    }
}

/// A controller and a host `HELLO` with `cred` both get `GOAWAY code`.
async fn hellos_get(cx: &Context, cred: &Credential, code: CloseCode) -> CaseResult<()> {
    first_frame_gets(cx, "ctl-new", hello_bytes(&controller_hello(cred))?, code).await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    first_frame_gets(cx, "host-new", hello_bytes(&host_hello(cred, &msg1))?, code).await
}

/// A host and a controller of `cred` reach `READY` and a session passes DATA.
async fn workspace_works(cx: &Context, cred: &Credential) -> CaseResult<()> {
    let key = HostKey::random();
    let mut h = host(cx, "host-after", cred, &key).await?;
    let mut c = controller(cx, "ctl-after", cred).await?;
    let s = random_session();
    open_session(&mut c, &mut h, &key, s).await?;
    data_crosses(&mut c, &mut h, s, pattern(3, 64)).await
}

const LINK37_CREDENTIAL_CHANGED: Case = case! {
    id: "LINK-37/credential-changed",
    level: Must,
    timeout: 30 s,
    description: "changing a workspace's credential ends its host, controller and authenticating links with GOAWAY AUTH_FAILED; the old credential is refused, the new one accepted",
    relay: link37_credential_changed,
};
async fn link37_credential_changed(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let old = scratch.cred.clone();
            let v = victims(cx, &old).await?;
            let applied = scratch.set(cx, Some(fresh_credential()), true).await?;
            v.expect_all_revoked(cx, CloseCode::AUTH_FAILED, applied)
                .await?;
            // The old credential is now simply wrong (LINK-10); the new one works.
            hellos_get(cx, &old, CloseCode::AUTH_FAILED).await?;
            workspace_works(cx, &scratch.cred).await
        })
    })
    .await
}

const LINK37_REMOTE_ACCESS_OFF: Case = case! {
    id: "LINK-37/remote-access-off",
    level: Must,
    timeout: 30 s,
    description: "switching remote access off ends the workspace's links with GOAWAY REMOTE_ACCESS_DISABLED and refuses new HELLOs; switched on, they are accepted again",
    relay: link37_remote_access_off,
};
async fn link37_remote_access_off(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let v = victims(cx, &cred).await?;
            let applied = scratch
                .set(cx, Some(cred.credential.clone()), false)
                .await?;
            v.expect_all_revoked(cx, CloseCode::REMOTE_ACCESS_DISABLED, applied)
                .await?;
            // LINK-11 for new links, until the switch is back on.
            hellos_get(cx, &cred, CloseCode::REMOTE_ACCESS_DISABLED).await?;
            scratch.set(cx, Some(cred.credential.clone()), true).await?;
            workspace_works(cx, &cred).await
        })
    })
    .await
}

const LINK37_WORKSPACE_REMOVED: Case = case! {
    id: "LINK-37/workspace-removed",
    level: Must,
    timeout: 30 s,
    description: "removing a workspace ends its links with GOAWAY AUTH_FAILED and its credential is refused",
    relay: link37_workspace_removed,
};
async fn link37_workspace_removed(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let v = victims(cx, &cred).await?;
            let applied = scratch.set(cx, None, false).await?;
            v.expect_all_revoked(cx, CloseCode::AUTH_FAILED, applied)
                .await?;
            hellos_get(cx, &cred, CloseCode::AUTH_FAILED).await
        })
    })
    .await
}

/// A session in another workspace, to watch while the scratch workspace changes.
struct Bystander {
    host: Link,
    ctl: Link,
    session: SessionId,
    seed: u32,
}

async fn bystander(
    cx: &Context,
    cred: &Credential,
    name: &str,
    seed: u32,
) -> CaseResult<Bystander> {
    let key = HostKey::random();
    let mut host = host(cx, &format!("host-{name}"), cred, &key).await?;
    let mut ctl = controller(cx, &format!("ctl-{name}"), cred).await?;
    let session = random_session();
    open_session(&mut ctl, &mut host, &key, session).await?;
    Ok(Bystander {
        host,
        ctl,
        session,
        seed,
    })
}

impl Bystander {
    /// Nothing arrived on either link, and DATA still crosses both ways.
    async fn check(&mut self) -> CaseResult<()> {
        self.host.expect_quiet(Duration::from_millis(200)).await?;
        self.ctl.expect_quiet(Duration::from_millis(200)).await?;
        self.seed += 2;
        data_crosses(
            &mut self.ctl,
            &mut self.host,
            self.session,
            pattern(self.seed, 200),
        )
        .await?;
        data_crosses(
            &mut self.host,
            &mut self.ctl,
            self.session,
            pattern(self.seed + 1, 200),
        )
        .await
    }
}

const LINK37_OTHERS_UNTOUCHED: Case = case! {
    id: "LINK-37/other-workspaces-untouched",
    level: Must,
    timeout: 30 s,
    description: "changing, switching off and removing one workspace leaves the sessions of the others passing DATA",
    relay: link37_others_untouched,
};
async fn link37_others_untouched(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let relay = cx.relay()?;
            let mut watched = vec![bystander(cx, &relay.workspace, "main", 10).await?];
            if let Some(other) = &relay.other_workspace {
                watched.push(bystander(cx, other, "other", 20).await?);
            }
            // Each change ends the scratch workspace's controller, and nothing else.
            let mut ctl = controller(cx, "ctl-changed", &scratch.cred).await?;
            let applied = scratch.set(cx, Some(fresh_credential()), true).await?;
            expect_revoked(cx, &mut ctl, CloseCode::AUTH_FAILED, None, applied).await?;
            for b in &mut watched {
                b.check().await?;
            }
            let mut ctl = controller(cx, "ctl-switched-off", &scratch.cred).await?;
            let c = scratch.cred.credential.clone();
            let applied = scratch.set(cx, Some(c), false).await?;
            expect_revoked(
                cx,
                &mut ctl,
                CloseCode::REMOTE_ACCESS_DISABLED,
                None,
                applied,
            )
            .await?;
            for b in &mut watched {
                b.check().await?;
            }
            let c = scratch.cred.credential.clone();
            scratch.set(cx, Some(c), true).await?;
            let mut ctl = controller(cx, "ctl-removed", &scratch.cred).await?;
            let applied = scratch.set(cx, None, false).await?;
            expect_revoked(cx, &mut ctl, CloseCode::AUTH_FAILED, None, applied).await?;
            for b in &mut watched {
                b.check().await?;
            }
            Ok(())
        })
    })
    .await
}

const LINK37_UNCHANGED: Case = case! {
    id: "LINK-37/unchanged-keeps-links",
    level: Must,
    timeout: 30 s,
    description: "setting a workspace to the credential and remote access it already has ends no link",
    relay: link37_unchanged,
};
async fn link37_unchanged(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let mut v = victims(cx, &cred).await?;
            scratch.set(cx, Some(cred.credential.clone()), true).await?;
            let wait = LINK37_BOUND + Duration::from_millis(500);
            v.host.expect_quiet(wait).await?;
            v.ctl.expect_quiet(Duration::from_millis(100)).await?;
            v.authenticating
                .expect_quiet(Duration::from_millis(100))
                .await?;
            data_crosses(&mut v.ctl, &mut v.host, v.session, pattern(4, 100)).await?;
            data_crosses(&mut v.host, &mut v.ctl, v.session, pattern(5, 100)).await
        })
    })
    .await
}
