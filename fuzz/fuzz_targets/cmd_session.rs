//! Chapter 5's session rules in the core — the gate (`cmd::gate`) and the approvals
//! (`cmd::approvals`) — driven by arbitrary bytes from three sessions, approvals asked and
//! cancelled, sessions closing and time passing.
//!
//! Asserts: no panic; a request is admitted only on an initialized session from an allowed
//! device under the in-flight limit (`CMD-15`, `CMD-55`, `CMD-56`, `CMD-58`); every message
//! the approvals send parses back under the envelope rules and goes to a session that is
//! open; each approval resolves at most once (`CMD-30`, `CMD-32`), its winner one of the
//! sessions that answered; nothing is pending past its time limit after `handle_timeout`
//! (`CMD-31`).
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_proto::cmd::approvals::Approvals;
use tether_proto::cmd::gate::{Access, Inbound, SessionGate};
use tether_proto::cmd::methods::{ApprovalTether, CommandExecutionRequestApprovalParams};
use tether_proto::cmd::types::SandboxMode;
use tether_proto::cmd::{MAX_IN_FLIGHT_REQUESTS, Message};
use tether_proto::link::SessionId;

#[derive(Arbitrary, Debug)]
enum Step {
    /// Raw bytes from a session, with the device's standing and the in-flight count.
    Message { session: u8, access: u8, in_flight: u8, bytes: Vec<u8> },
    /// An answer to approval request `id` from a session.
    Answer { session: u8, id: u8, decision: u8 },
    Ask { thread: u8 },
    Cancel { thread: u8 },
    Close { session: u8 },
    Reopen { session: u8 },
    Advance { seconds: u16 },
}

const DECISIONS: [&str; 5] = ["accept", "acceptForSession", "decline", "cancel", "bogus"];

fn sid(n: u8) -> SessionId {
    SessionId([n % 3; 8])
}

fn params(thread: &str) -> CommandExecutionRequestApprovalParams {
    CommandExecutionRequestApprovalParams {
        thread_id: thread.into(),
        turn_id: "turn".into(),
        item_id: "item".into(),
        started_at_ms: 0,
        command: "make".into(),
        cwd: "/w".into(),
        command_actions: Vec::new(),
        reason: None,
        available_decisions: None,
        tether: Some(ApprovalTether {
            sandbox: SandboxMode::ReadOnly,
        }),
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut approvals = Approvals::new(Duration::from_secs(300));
    let mut gates = [SessionGate::new(), SessionGate::new(), SessionGate::new()];
    let mut open: HashSet<SessionId> = HashSet::new();
    for n in 0..3 {
        approvals.session_opened(sid(n), format!("device-{n}"));
        open.insert(sid(n));
    }
    let attached = |open: &HashSet<SessionId>| {
        let mut v: Vec<SessionId> = open.iter().copied().collect();
        v.sort();
        v
    };
    let mut answered: HashSet<SessionId> = HashSet::new();
    for step in steps.into_iter().take(128) {
        match step {
            Step::Message { session, access, in_flight, bytes } => {
                let Ok(message) = Message::parse(&bytes) else { continue };
                let access = [Access::Allowed, Access::NotAuthorized, Access::RemoteAccessDisabled]
                    [usize::from(access % 3)];
                let gate = &mut gates[usize::from(session % 3)];
                let initialized = gate.is_initialized();
                let in_flight = usize::from(in_flight) % (MAX_IN_FLIGHT_REQUESTS + 2);
                match gate.handle(message, access, in_flight, |m| m == "command/exec") {
                    Inbound::Request { .. } => {
                        assert!(initialized && access == Access::Allowed);
                        assert!(in_flight < MAX_IN_FLIGHT_REQUESTS);
                    }
                    Inbound::Initialize { .. } => {
                        assert!(!initialized && access == Access::Allowed);
                        assert!(gate.is_initialized());
                    }
                    Inbound::Response(m) => {
                        assert_eq!(access, Access::Allowed);
                        let s = sid(session);
                        if open.contains(&s) {
                            answered.insert(s);
                            let list = attached(&open);
                            approvals.handle_response(s, m, |_| list.clone());
                        }
                    }
                    Inbound::Close(_) | Inbound::Refused { close: Some(_), .. } => {
                        assert_ne!(access, Access::Allowed)
                    }
                    _ => {}
                }
            }
            Step::Answer { session, id, decision } => {
                let s = sid(session);
                if !open.contains(&s) {
                    continue;
                }
                let text = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"decision":"{}"}}}}"#,
                    DECISIONS[usize::from(decision) % DECISIONS.len()]
                );
                answered.insert(s);
                let list = attached(&open);
                approvals.handle_response(s, Message::parse(text.as_bytes()).unwrap(), |_| list.clone());
            }
            Step::Ask { thread } => {
                let thread = format!("thr_{}", thread % 4);
                let was = approvals.is_pending(&thread);
                let list = attached(&open);
                assert_eq!(approvals.ask(&thread, params(&thread), &list, now).is_err(), was);
            }
            Step::Cancel { thread } => {
                let list = attached(&open);
                approvals.cancel(&format!("thr_{}", thread % 4), &list);
            }
            Step::Close { session } => {
                open.remove(&sid(session));
                approvals.session_closed(sid(session));
            }
            Step::Reopen { session } => {
                if open.insert(sid(session)) {
                    approvals.session_opened(sid(session), format!("device-{session}"));
                }
            }
            Step::Advance { seconds } => {
                now += Duration::from_secs(u64::from(seconds));
                let list = attached(&open);
                approvals.handle_timeout(now, |_| list.clone());
                if let Some(t) = approvals.poll_timeout() {
                    assert!(t > now, "pending past its time limit");
                }
            }
        }
        while let Some((session, message)) = approvals.poll_outgoing() {
            assert!(open.contains(&session), "sent to a closed session");
            Message::parse(&message.to_bytes()).expect("the approvals send valid messages");
        }
        let mut resolved = HashSet::new();
        while let Some(r) = approvals.poll_resolution() {
            assert!(resolved.insert(r.thread_id.clone()), "resolved twice in one step");
            if let Some(w) = r.winner {
                assert!(answered.contains(&w), "the winner never answered");
            }
        }
    }
});
