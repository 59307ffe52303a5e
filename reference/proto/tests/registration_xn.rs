//! Host registration (`LINK-12`, `LINK-13`): `Noise_XN` between a host and a relay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use curve25519_dalek::MontgomeryPoint;
use tether_proto::link::registration::{
    HostRegistration, REGISTRATION_MSG2_LEN, RelayRegistration, registration_prologue,
};
use tether_proto::link::{CloseCode, LinkError};

const HOST_STATIC: [u8; 32] = [0x11; 32];
const HOST_EPHEMERAL: [u8; 32] = [0x22; 32];
const RELAY_EPHEMERAL: [u8; 32] = [0x33; 32];
const OTHER_RELAY_EPHEMERAL: [u8; 32] = [0x44; 32];

fn public(private: [u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(private).to_bytes()
}

/// Runs a registration and returns (msg1, msg2, msg3).
fn run(workspace: &str, relay_eph: [u8; 32]) -> ([u8; 32], [u8; 48], [u8; 64]) {
    let (host, msg1) =
        HostRegistration::start_with_ephemeral(&HOST_STATIC, workspace, HOST_EPHEMERAL).unwrap();
    let mut relay = RelayRegistration::new(workspace, relay_eph).unwrap();
    let msg2 = relay.read_hello(&msg1).unwrap();
    let msg3 = host.respond(&msg2).unwrap();
    let key = relay.read_proof(&msg3).unwrap();
    assert_eq!(key, public(HOST_STATIC));
    (msg1, msg2, msg3)
}

#[test]
fn link12_prologue_bytes() {
    assert_eq!(
        hex::encode(registration_prologue("ws-1").unwrap()),
        // "TETHER-REG-V1" || 0x04 || "ws-1"
        "5445544845522d5245472d56310477732d31"
    );
}

#[test]
fn link12_registration_yields_host_key_and_lengths() {
    let (msg1, msg2, msg3) = run("acme", RELAY_EPHEMERAL);
    // msg1 is the host ephemeral public key in clear.
    assert_eq!(msg1, public(HOST_EPHEMERAL));
    // msg2 starts with the relay ephemeral public key in clear.
    assert_eq!(msg2[..32], public(RELAY_EPHEMERAL));
    assert_eq!(msg3.len(), 64);
}

#[test]
fn link12_registration_with_os_randomness() {
    let (host, msg1) = HostRegistration::start(&HOST_STATIC, "acme").unwrap();
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    let msg2 = relay.read_hello(&msg1).unwrap();
    let msg3 = host.respond(&msg2).unwrap();
    assert_eq!(relay.read_proof(&msg3).unwrap(), public(HOST_STATIC));
}

#[test]
fn link12_deterministic_given_ephemerals() {
    assert_eq!(run("acme", RELAY_EPHEMERAL), run("acme", RELAY_EPHEMERAL));
}

#[test]
fn link12_proof_for_one_workspace_fails_for_another() {
    // Host believes workspace "acme"; the relay checks it for workspace "other".
    let (host, msg1) =
        HostRegistration::start_with_ephemeral(&HOST_STATIC, "acme", HOST_EPHEMERAL).unwrap();
    let mut relay = RelayRegistration::new("other", RELAY_EPHEMERAL).unwrap();
    let msg2 = relay.read_hello(&msg1).unwrap();
    // The host cannot even authenticate the challenge: the transcripts differ.
    assert_eq!(host.respond(&msg2), Err(LinkError::RegistrationFailed));

    // A proof recorded for "acme" does not verify on a relay checking "other" with the same
    // ephemerals.
    let (msg1, _, msg3) = run("acme", RELAY_EPHEMERAL);
    let mut relay = RelayRegistration::new("other", RELAY_EPHEMERAL).unwrap();
    relay.read_hello(&msg1).unwrap();
    let err = relay.read_proof(&msg3).unwrap_err();
    assert_eq!(err, LinkError::RegistrationFailed);
    assert_eq!(err.close_code(), CloseCode::REGISTRATION_FAILED);
    assert_eq!(err.requirement(), "LINK-12");
}

#[test]
fn link13_recorded_proof_does_not_verify_against_another_relay_ephemeral() {
    let (msg1, _, msg3) = run("acme", RELAY_EPHEMERAL);
    // Replay msg1 and msg3 on a new link, where the relay drew a fresh ephemeral.
    let mut relay = RelayRegistration::new("acme", OTHER_RELAY_EPHEMERAL).unwrap();
    relay.read_hello(&msg1).unwrap();
    assert_eq!(relay.read_proof(&msg3), Err(LinkError::RegistrationFailed));
}

#[test]
fn link12_every_flipped_bit_of_the_proof_fails() {
    let (msg1, _, msg3) = run("acme", RELAY_EPHEMERAL);
    for bit in 0..msg3.len() * 8 {
        let mut bad = msg3;
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
        relay.read_hello(&msg1).unwrap();
        assert_eq!(
            relay.read_proof(&bad),
            Err(LinkError::RegistrationFailed),
            "bit {bit}"
        );
    }
}

#[test]
fn link12_flipped_bit_in_challenge_fails_at_host() {
    let (host, msg1) =
        HostRegistration::start_with_ephemeral(&HOST_STATIC, "acme", HOST_EPHEMERAL).unwrap();
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    let mut msg2 = relay.read_hello(&msg1).unwrap();
    msg2[40] ^= 0x01; // inside the tag of the empty payload
    assert_eq!(host.respond(&msg2), Err(LinkError::RegistrationFailed));
}

#[test]
fn link12_wrong_lengths_fail() {
    let (host, msg1) =
        HostRegistration::start_with_ephemeral(&HOST_STATIC, "acme", HOST_EPHEMERAL).unwrap();
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    assert_eq!(
        relay.read_hello(&msg1[..31]),
        Err(LinkError::RegistrationFailed)
    );
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    let msg2 = relay.read_hello(&msg1).unwrap();
    assert_eq!(msg2.len(), REGISTRATION_MSG2_LEN);
    assert_eq!(
        host.respond(&msg2[..47]),
        Err(LinkError::RegistrationFailed)
    );
    assert_eq!(
        relay.read_proof(&[0u8; 63]),
        Err(LinkError::RegistrationFailed)
    );
}

#[test]
fn link12_proof_before_hello_fails() {
    let (_, _, msg3) = run("acme", RELAY_EPHEMERAL);
    let relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    assert_eq!(relay.read_proof(&msg3), Err(LinkError::RegistrationFailed));
}

#[test]
fn chan7_low_order_host_ephemeral_is_rejected() {
    // The all-zero point (and the order-8 point below) give an all-zero `ee`.
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    assert_eq!(
        relay.read_hello(&[0u8; 32]),
        Err(LinkError::RegistrationFailed)
    );
    let order8 =
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    let mut relay = RelayRegistration::new("acme", RELAY_EPHEMERAL).unwrap();
    assert_eq!(
        relay.read_hello(&order8),
        Err(LinkError::RegistrationFailed)
    );
}

#[test]
fn link12_workspace_too_long_to_frame_is_an_error() {
    let long = "a".repeat(256);
    assert!(HostRegistration::start(&HOST_STATIC, &long).is_err());
    assert!(RelayRegistration::new(&long, RELAY_EPHEMERAL).is_err());
}
