//! Host case of denial of service by message 1 (`spec/04` section 4.7.1, `CHAN-30`): one
//! sender's flood of message 1s does not lock out the paired devices. It runs alone, like
//! `CHAN-14`: its flood spends the shared message-1 bucket every pairing depends on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tether_proto::channel::{HandshakePayload, Initiator, Prologue, Timestamp};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::time::UnixTime;

use crate::case::{Case, case};
use crate::cases::steps::devices::{pair_for_revocation, revoke};
use crate::context::Context;
use crate::host::{Device, Opened, Res, Stop, check, hfail, host_target, paired, session_with};
use crate::link::{Link, controller, random_session};
use crate::traffic::describe;

/// The flood case.
pub const CASES: &[Case] = &[FLOOD_DOES_NOT_LOCK_OUT];

// ---------------------------------------------------------------------------------------
// CHAN-30: one sender's flood does not lock out the paired devices

/// Controller links of the flood, and the message 1s each may have unanswered: below the
/// relay's 16 sessions per controller link, and 45 in all below its 64 per host link
/// (`LINK-20`), with room for the paired device's own session.
const FLOOD_LINKS: usize = 3;
const FLOOD_IN_FLIGHT_PER_LINK: usize = 15;

/// One message 1 every millisecond at most: a steady stream (a burst now and then would
/// leave the shared bucket, 50 a second, tokens to give between bursts), twenty times the
/// shared bucket's refill and a fifth of the read budget (5 000 a second, `CHAN-14`), which
/// a faster flood would spend for everyone. Over a slow link the unanswered ones bound it
/// lower (45 per round trip).
const FLOOD_STEP: Duration = Duration::from_millis(1);

/// The flood's bounds, whatever happens to the paired device's sessions.
const FLOOD_MAX_TIME: Duration = Duration::from_secs(5);
const FLOOD_MAX_MESSAGES: usize = 5_000;

/// Sessions the paired device opens during the flood, one after another: as many as its
/// own bucket holds (`CHAN-30`: capacity 10, 5 a second).
const PAIRED_SESSIONS: usize = 10;

/// What the flood got back.
#[derive(Debug, Default)]
struct FloodTally {
    sent: usize,
    rate_limited: usize,
    refused: usize,
}

impl FloodTally {
    fn count(&mut self, frame: &RelayFrame) -> Res<()> {
        match frame {
            RelayFrame::Close { code, .. } if *code == CloseCode::RATE_LIMITED => {
                self.rate_limited += 1;
            }
            RelayFrame::Close { .. } => self.refused += 1,
            other => {
                return hfail(format!(
                    "a message 1 of the flood was answered with {}",
                    describe(other)
                ));
            }
        }
        Ok(())
    }
}

/// `n` correct message 1s (`SESSION` payloads) from `senders` in turn, each for a fresh
/// session id: the host reads the claimed key of each (section 4.7, step 4.1), so every
/// one is charged to its sender's bucket.
fn flood_messages(
    senders: &[[u8; 32]],
    host_key: &[u8; 32],
    workspace: &str,
    n: usize,
) -> Result<Vec<(SessionId, Vec<u8>)>, String> {
    senders
        .iter()
        .cycle()
        .take(n)
        .map(|private| {
            let session = random_session();
            let prologue = Prologue::new(workspace, host_key, session)
                .map_err(|e| format!("prologue: {e}"))?;
            let payload = HandshakePayload::Session {
                timestamp: Timestamp::next_after(None, UnixTime::now()),
            };
            let init = Initiator::new(private, host_key, &prologue, &payload)
                .map_err(|e| format!("message 1: {e}"))?;
            Ok((session, init.message1().to_vec()))
        })
        .collect()
}

/// Floods the host from `senders`, one message 1 per [`FLOOD_STEP`] on the links in turn,
/// until `done` (the paired device's sessions are over) or the flood's bounds; then waits
/// for every answer. The message 1s are written on a blocking thread ahead of the flood.
async fn flood(
    links: Vec<Link>,
    senders: Vec<[u8; 32]>,
    host_key: [u8; 32],
    workspace: String,
    done: &AtomicBool,
) -> Res<FloodTally> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(SessionId, Vec<u8>)>(256);
    let writer = tokio::task::spawn_blocking(move || {
        let mut written = 0;
        while written < FLOOD_MAX_MESSAGES {
            for m in flood_messages(&senders, &host_key, &workspace, 16)? {
                if tx.blocking_send(m).is_err() {
                    return Ok(());
                }
                written += 1;
            }
        }
        Ok::<(), String>(())
    });
    // Each link with the number of its message 1s not answered yet.
    let mut links: Vec<(Link, usize)> = links.into_iter().map(|l| (l, 0)).collect();
    let mut tally = FloodTally::default();
    let mut tick = tokio::time::interval(FLOOD_STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut turn = 0usize;
    while !done.load(Ordering::Relaxed)
        && start.elapsed() < FLOOD_MAX_TIME
        && tally.sent < FLOOD_MAX_MESSAGES
    {
        tick.tick().await;
        turn = turn.wrapping_add(1);
        let count = links.len().max(1);
        if let Some((link, unanswered)) = links.get_mut(turn % count)
            && *unanswered < FLOOD_IN_FLIGHT_PER_LINK
        {
            let Some((session, handshake)) = rx.recv().await else {
                break;
            };
            link.send(&RelayFrame::Open {
                session,
                host_key,
                handshake,
            })
            .await?;
            *unanswered += 1;
            tally.sent += 1;
        }
        // The answers already there.
        for (link, unanswered) in &mut links {
            while *unanswered > 0 {
                let Ok(frame) = link.recv(Duration::ZERO).await else {
                    break;
                };
                *unanswered -= 1;
                tally.count(&frame)?;
            }
        }
    }
    drop(rx);
    for (mut link, unanswered) in links {
        for _ in 0..unanswered {
            let frame = link.recv(Duration::from_secs(10)).await?;
            tally.count(&frame)?;
        }
        link.close_websocket().await;
    }
    writer
        .await
        .map_err(|e| Stop::Fail(format!("writing the flood's message 1s: {e}")))?
        .map_err(|e| Stop::Fail(format!("writing the flood's message 1s: {e}")))?;
    Ok(tally)
}

/// The paired device opens [`PAIRED_SESSIONS`] sessions one after another (after the flood
/// has had half a second to empty the shared bucket); returns the refusals.
async fn paired_sessions(cx: &Context) -> Res<Vec<String>> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refusals = Vec::new();
    for i in 1..=PAIRED_SESSIONS {
        match session_with(cx, &format!("paired-{i}"), None).await? {
            Opened::Established(s) => s.close().await,
            Opened::Refused(code, _) => refusals.push(format!("session {i}: CLOSE {code}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(refusals)
}

const FLOOD_DOES_NOT_LOCK_OUT: Case = case! {
    id: "CHAN-30/flood-does-not-lock-out-paired-devices",
    level: Must,
    timeout: 60 s,
    exclusive: true,
    description: "while unknown and revoked keys flood the host with message 1s, every session the paired device opens is accepted",
    host: flood_does_not_lock_out,
};
async fn flood_does_not_lock_out(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let host = host_target(&cx)?;
    // The flood's senders: a key never paired, and a device paired and then revoked where
    // the runner can revoke one and has a token to spare.
    let mut senders = vec![Device::fresh("flood-unknown").private];
    let mut who = "a key never paired".to_owned();
    if host.admin.can_revoke() {
        match pair_for_revocation(&cx).await {
            Ok((device, s)) => {
                s.close().await;
                revoke(&cx, &device).await?;
                senders.push(device.private);
                who.push_str(" and a revoked device");
            }
            Err(Stop::Skip(why)) => cx
                .log
                .note("runner", format!("the flood has no revoked sender: {why}")),
            Err(e) => return Err(e),
        }
    }
    let mut links = Vec::new();
    for i in 0..FLOOD_LINKS {
        links.push(controller(&cx, &format!("flood-{i}"), &host.relay.workspace).await?);
    }
    // The paired device's own bucket fills (capacity 10 at 5 a second) while nothing
    // happens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = AtomicBool::new(false);
    let flooding = flood(
        links,
        senders,
        identity.host_key(),
        identity.workspace().to_owned(),
        &done,
    );
    let opening = async {
        let r = paired_sessions(&cx).await;
        done.store(true, Ordering::Relaxed);
        r
    };
    let start = Instant::now();
    let (tally, refusals) = tokio::join!(flooding, opening);
    let secs = start.elapsed().as_secs_f64();
    // Let the shared bucket fill again for the cases that follow (pairings use it).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (tally, refusals) = (tally?, refusals?);
    cx.log.note(
        "runner",
        format!(
            "flood from {who}: {} message 1s in {secs:.2} s, {} rate-limited, {} refused otherwise",
            tally.sent, tally.rate_limited, tally.refused
        ),
    );
    check(refusals.is_empty(), || {
        format!(
            "{} of {PAIRED_SESSIONS} sessions of the paired device were refused while {who} flooded the host with message 1s ({}); a paired device pays from its own bucket, which no other key's message 1 may spend (CHAN-30)",
            refusals.len(),
            refusals.join(", ")
        )
    })?;
    check(tally.rate_limited > 0, || {
        format!(
            "{} message 1s from {who} in {secs:.2} s were all processed: every sender but a paired device shares one bucket of 50 a second (CHAN-30, CHAN-14)",
            tally.sent
        )
    })
}
