//! The host's message-1 budget under a flood (`CHAN-14`, `CHAN-30`): whoever floods —
//! a paired device replaying its message 1, a revoked device, a key the host never paired,
//! or bytes that are no handshake at all — the other paired devices' handshakes all
//! succeed, and the work the flood gets is bounded. Virtual time, no I/O.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tether_proto::channel::{HostInfo, PathStyle, Timestamp};
use tether_proto::keys::public_key;
use tether_proto::limits::{
    DEVICE_HANDSHAKE_BURST, DEVICE_HANDSHAKE_RATE_PER_SEC, HANDSHAKE_BURST, HANDSHAKE_RATE_PER_SEC,
};
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, Host, HostConfig, HostEvent, HostStore, MemoryHostStore, Purpose,
    Refusal, RefusalReason,
};
use tether_proto::time::UnixTime;

const HOST_PRIVATE: [u8; 32] = [0x11; 32];
const WALL: UnixTime = UnixTime::from_secs(1_800_000_000);
/// The flooding paired device, the revoked one, a key never paired.
const FLOODER: [u8; 32] = [0x21; 32];
const REVOKED: [u8; 32] = [0x22; 32];
const STRANGER: [u8; 32] = [0x23; 32];
/// Paired devices that connect at their ordinary pace during the flood.
const VICTIMS: [[u8; 32]; 3] = [[0x31; 32], [0x32; 32], [0x33; 32]];

fn host() -> Host {
    Host::new(HostConfig {
        static_private: HOST_PRIVATE,
        workspace: "acme".into(),
        host_info: HostInfo {
            name: "build-box".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            shell: "bash".into(),
            path_style: PathStyle::Posix,
            capabilities: vec!["command.exec".into()],
            protocol: "tether/1".into(),
        },
        remote_access: true,
        confirm_pairing: false,
    })
}

fn store() -> MemoryHostStore {
    let mut s = MemoryHostStore::new();
    let ts = Timestamp::from_unix(WALL);
    for key in [FLOODER, REVOKED].iter().chain(VICTIMS.iter()) {
        s.record_device(&public_key(key), "device", ts, WALL)
            .unwrap();
    }
    assert!(s.revoke(&public_key(&REVOKED)));
    s
}

fn controller(private: [u8; 32], session: SessionId, wall: UnixTime, now: Instant) -> Controller {
    Controller::connect(
        ControllerConfig {
            static_private: private,
            host_key: public_key(&HOST_PRIVATE),
            workspace: "acme".into(),
            session,
            timestamp: Timestamp::from_unix(wall),
            purpose: Purpose::Resume,
            handshake_timeout: ControllerConfig::default_timeout(&Purpose::Resume),
        },
        now,
    )
    .unwrap()
}

/// Message 1 of a controller, as `OPEN` carries it.
fn message1(c: &mut Controller) -> Vec<u8> {
    match c.poll_transmit() {
        Some(RelayFrame::Open { handshake, .. }) => handshake,
        other => panic!("{other:?}"),
    }
}

/// What the host did with one message 1.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Established,
    RateLimited,
    Other,
}

fn outcome(h: &mut Host, session: SessionId) -> Outcome {
    let mut out = Outcome::Other;
    while let Some(e) = h.poll_event() {
        match e {
            HostEvent::Established { session: s, .. } if s == session => {
                out = Outcome::Established;
            }
            HostEvent::Refused {
                session: s,
                refusal: RefusalReason::Refusal(Refusal::RateLimited),
            } if s == session => out = Outcome::RateLimited,
            _ => {}
        }
    }
    while h.poll_transmit().is_some() {}
    out
}

/// Who floods, how many message 1s per 10 ms tick.
#[derive(Clone, Copy, Debug)]
struct Flood {
    /// The paired flooder replays one message 1 (each copy after the first is `REPLAYED`
    /// once it gets through the budget).
    paired: u32,
    revoked: u32,
    stranger: u32,
    junk: u32,
}

struct Tally {
    victims_ok: u32,
    victims_total: u32,
    /// Flood messages that got past the budget (cost the whole message-1 read).
    flood_processed: u64,
    flood_limited: u64,
}

/// Runs `secs` seconds of virtual time: each 10 ms tick the flood, and every
/// `victim_every` ticks one session of each victim device (closed once established).
fn run(flood: Flood, secs: u64, victim_every: u64) -> Tally {
    let t0 = Instant::now();
    let mut h = host();
    let mut s = store();
    let mut next_sid: u64 = 1;
    let mut sid = || {
        next_sid += 1;
        SessionId(next_sid.to_be_bytes())
    };
    let replayed = message1(&mut controller(FLOODER, SessionId([0xf0; 8]), WALL, t0));
    let revoked = message1(&mut controller(REVOKED, SessionId([0xf1; 8]), WALL, t0));
    let stranger = message1(&mut controller(STRANGER, SessionId([0xf2; 8]), WALL, t0));
    let junk: Vec<u8> = (0..110u8).map(|i| i.wrapping_mul(29)).collect();
    let mut tally = Tally {
        victims_ok: 0,
        victims_total: 0,
        flood_processed: 0,
        flood_limited: 0,
    };
    for tick in 0..secs * 100 {
        let now = t0 + Duration::from_millis(tick * 10);
        let wall = WALL.saturating_add(Duration::from_millis(tick * 10 + 1));
        // Each message goes out again under the session id it was made for (the prologue
        // binds it, `CHAN-2`); a refused session leaves nothing behind, so the id is free
        // again at once.
        let kinds = [
            (flood.paired, &replayed, Some(SessionId([0xf0; 8]))),
            (flood.revoked, &revoked, Some(SessionId([0xf1; 8]))),
            (flood.stranger, &stranger, Some(SessionId([0xf2; 8]))),
            (flood.junk, &junk, None),
        ];
        for (count, bytes, session) in kinds {
            for _ in 0..count {
                let session = session.unwrap_or_else(&mut sid);
                h.handle_incoming(session, bytes, now, wall, &mut s);
                match outcome(&mut h, session) {
                    Outcome::RateLimited => tally.flood_limited += 1,
                    Outcome::Established => panic!("a flood message opened a session"),
                    Outcome::Other => tally.flood_processed += 1,
                }
            }
        }
        if tick % victim_every == 0 {
            for victim in VICTIMS {
                let session = sid();
                let mut c = controller(victim, session, wall, now);
                let m1 = message1(&mut c);
                h.handle_incoming(session, &m1, now, wall, &mut s);
                tally.victims_total += 1;
                if outcome(&mut h, session) == Outcome::Established {
                    tally.victims_ok += 1;
                    h.handle_close(session, tether_proto::link::CloseCode::NORMAL);
                    while h.poll_event().is_some() {}
                }
            }
        }
    }
    tally
}

/// The most message 1s of non-victims that may get past the budget in `secs` seconds:
/// the shared bucket, plus the flooding paired device's own bucket.
fn flood_bound(secs: u64, paired_floods: bool) -> u64 {
    let shared = u64::from(HANDSHAKE_BURST) + u64::from(HANDSHAKE_RATE_PER_SEC) * secs;
    let own = u64::from(DEVICE_HANDSHAKE_BURST) + u64::from(DEVICE_HANDSHAKE_RATE_PER_SEC) * secs;
    shared + if paired_floods { own } else { 0 }
}

#[test]
fn chan_30_one_key_flooding_does_not_lock_out_the_others() {
    // 2 000 replays a second from a paired device, 1 000 from a revoked one, 500 from a key
    // never paired, 500 of junk: 4 000 message 1s a second, the measured attack and more.
    let flood = Flood {
        paired: 20,
        revoked: 10,
        stranger: 5,
        junk: 5,
    };
    let secs = 5;
    // Each victim connects twice a second (its own bucket holds 5 a second).
    let tally = run(flood, secs, 50);
    assert_eq!(tally.victims_total, 3 * 2 * u32::try_from(secs).unwrap());
    assert_eq!(
        tally.victims_ok, tally.victims_total,
        "CHAN-30: every handshake of the other paired devices succeeds"
    );
    // CHAN-14: the flood's full message-1 reads stay within the shared bucket and the
    // flooder's own.
    assert!(
        tally.flood_processed <= flood_bound(secs, true),
        "{} flood messages processed, bound {}",
        tally.flood_processed,
        flood_bound(secs, true)
    );
    assert!(tally.flood_limited > 15_000, "{}", tally.flood_limited);
}

#[test]
fn chan_14_without_chan_30_the_same_flood_locks_everyone_out() {
    // The control: the same flood against a host whose store cannot tell paired devices
    // (every sender in the one shared bucket, as before CHAN-30) locks the victims out.
    struct Blind(MemoryHostStore);
    impl HostStore for Blind {
        fn admit(
            &mut self,
            device: &[u8; 32],
            timestamp: Timestamp,
            now: UnixTime,
        ) -> Result<(), Refusal> {
            self.0.admit(device, timestamp, now)
        }
        fn redeem_token(
            &mut self,
            token_id: &[u8; 16],
            token_secret: &[u8; 32],
            now: UnixTime,
        ) -> Result<(), Refusal> {
            self.0.redeem_token(token_id, token_secret, now)
        }
        fn record_device(
            &mut self,
            device: &[u8; 32],
            name: &str,
            timestamp: Timestamp,
            now: UnixTime,
        ) -> Result<(), Refusal> {
            self.0.record_device(device, name, timestamp, now)
        }
    }
    let t0 = Instant::now();
    let mut h = host();
    let mut s = Blind(store());
    let stranger = message1(&mut controller(STRANGER, SessionId([0xf2; 8]), WALL, t0));
    let mut ok = 0;
    for tick in 0..100u64 {
        let now = t0 + Duration::from_millis(tick * 10);
        let wall = WALL.saturating_add(Duration::from_millis(tick * 10 + 1));
        for _ in 0..20 {
            h.handle_incoming(SessionId([0xf2; 8]), &stranger, now, wall, &mut s);
        }
        while h.poll_event().is_some() {}
        let session = SessionId([0xee, 0, 0, 0, 0, 0, 0, u8::try_from(tick).unwrap()]);
        let mut c = controller(VICTIMS[0], session, wall, now);
        let m1 = message1(&mut c);
        h.handle_incoming(session, &m1, now, wall, &mut s);
        if outcome(&mut h, session) == Outcome::Established {
            ok += 1;
            h.handle_close(session, tether_proto::link::CloseCode::NORMAL);
            while h.poll_event().is_some() {}
        }
    }
    assert!(
        ok < 10,
        "{ok} of 100 got through a shared bucket under the flood"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever mix of senders floods (up to 4 000 message 1s a second), a paired device
    /// that keeps to its own rate always gets in, and the flood's work stays bounded.
    #[test]
    fn chan_30_any_flood_leaves_paced_devices_their_budget(
        paired in 0u32..20,
        revoked in 0u32..10,
        stranger in 0u32..5,
        junk in 0u32..5,
        victim_every in 20u64..100,
    ) {
        let secs = 2;
        let flood = Flood { paired, revoked, stranger, junk };
        let tally = run(flood, secs, victim_every);
        prop_assert_eq!(tally.victims_ok, tally.victims_total);
        prop_assert!(tally.flood_processed <= flood_bound(secs, paired > 0));
    }
}
