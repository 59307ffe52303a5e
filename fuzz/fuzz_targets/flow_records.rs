//! Records and windows (`spec/04` section 4.13): a sender [`Flow`] and a receiver [`Flow`]
//! of one session, driven by arbitrary steps — messages and output queued, records moved
//! or dropped, arbitrary plaintexts injected, consumption and grants — plus a host flow
//! that takes arbitrary plaintexts from the start.
//!
//! Asserts: no panic; every plaintext the sender emits is at most 65519 bytes, decodes as a
//! record, and its size never exceeds the window the sender had (`CHAN-34`); a receiver
//! never holds more credit than 258048 (`CHAN-35`), and two sessions on one link never
//! more than 2 MiB together; the messages a receiver delivers from a well-behaved sender
//! are the messages queued, in order (`CHAN-32`, `CHAN-33`); a receiver that refused a
//! plaintext refuses with a requirement of CHAN-32, CHAN-34 or CHAN-35.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_proto::channel::records::Record;
use tether_proto::channel::{CreditLedger, Flow, Received};
use tether_proto::limits::{MAX_LINK_CREDIT, MAX_SESSION_CREDIT, MAX_TRANSPORT_PLAINTEXT_LEN};

#[derive(Arbitrary, Debug)]
enum Step {
    /// Queue a message of `len` bytes (pattern `seed`) at the host.
    Message { len: u32, seed: u8 },
    /// Queue output of `len` bytes at the host.
    Output { len: u32, stderr: bool, cap: bool },
    /// Move up to `n` plaintexts host -> controller.
    Deliver { n: u8 },
    /// The controller consumes what it has and grants.
    Consume,
    /// Move the controller's WINDOW records to the host.
    Return,
    /// An arbitrary plaintext at a fresh host flow (as from a hostile controller).
    Hostile { bytes: Vec<u8> },
}

fuzz_target!(|steps: Vec<Step>| {
    let mut link = CreditLedger::for_link(16);
    let mut host_link = CreditLedger::for_link(64);
    let mut ctl = Flow::controller(true, MAX_SESSION_CREDIT, &mut link);
    let mut other = Flow::controller(true, MAX_SESSION_CREDIT, &mut link);
    let mut host = Flow::host(true);
    let mut hostile = Flow::host(true);
    let mut to_host: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_ctl: VecDeque<Vec<u8>> = VecDeque::new();
    let mut sent_messages: VecDeque<Vec<u8>> = VecDeque::new();
    let mut held = 0u64;
    // The controller's opening WINDOW (CHAN-31).
    drain(&mut ctl, &mut to_host);
    drain(&mut other, &mut VecDeque::new());
    for step in steps.into_iter().take(64) {
        match step {
            Step::Message { len, seed } => {
                let len = (len % 300_000) as usize;
                let m: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(seed)).collect();
                if host.push(m.clone()).is_ok() {
                    sent_messages.push_back(m);
                }
            }
            Step::Output { len, stderr, cap } => {
                let data = vec![7u8; (len % 200_000) as usize];
                let _ = host.push_output(stderr, cap, "p-1", data);
            }
            Step::Deliver { n } => {
                for _ in 0..n {
                    while let Some(p) = to_host.pop_front() {
                        host.receive(&p, &mut host_link).expect("a conforming controller");
                    }
                    let window = host.window();
                    let mut p = Vec::new();
                    if !host.next_plaintext(&mut p) {
                        break;
                    }
                    assert!(p.len() <= MAX_TRANSPORT_PLAINTEXT_LEN);
                    let record = Record::decode(&p).expect("the host sends records");
                    if !matches!(record, Record::Window(_)) {
                        assert!(p.len() as u64 + 16 <= window, "CHAN-34");
                    }
                    to_ctl.push_back(p);
                }
                while let Some(p) = to_ctl.pop_front() {
                    match ctl.receive(&p, &mut link).expect("a conforming host") {
                        Received::Message { bytes, size } => {
                            assert_eq!(Some(bytes), sent_messages.pop_front(), "CHAN-33");
                            held += size;
                        }
                        Received::Output { size, .. } => held += size,
                        Received::TooLarge { .. } => panic!("no message is over 16 MiB"),
                        Received::Nothing => {}
                    }
                }
            }
            Step::Consume => {
                ctl.consume(held, &mut link);
                held = 0;
                ctl.grant(&mut link);
                other.grant(&mut link);
                drain(&mut ctl, &mut to_host);
            }
            Step::Return => {
                while let Some(p) = to_host.pop_front() {
                    host.receive(&p, &mut host_link).expect("a conforming controller");
                }
            }
            Step::Hostile { bytes } => {
                if let Err(e) = hostile.receive(&bytes, &mut host_link) {
                    assert!(
                        matches!(e.requirement(), "CHAN-32" | "CHAN-34" | "CHAN-35"),
                        "{e}"
                    );
                    hostile = Flow::host(true);
                }
            }
        }
        assert!(ctl.credit() <= MAX_SESSION_CREDIT, "CHAN-35");
        assert!(ctl.credit() + other.credit() <= MAX_LINK_CREDIT, "CHAN-35");
        assert!(host.window() <= MAX_SESSION_CREDIT);
    }
});

/// Moves a flow's plaintexts (its WINDOW records) into `out`.
fn drain(flow: &mut Flow, out: &mut VecDeque<Vec<u8>>) {
    loop {
        let mut p = Vec::new();
        if !flow.next_plaintext(&mut p) {
            return;
        }
        out.push_back(p);
    }
}
