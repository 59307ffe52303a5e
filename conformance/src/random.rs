//! Randomness for the runner: session ids, keys, scratch names.

use tether_proto::link::SessionId;

/// `N` bytes from the operating system's CSPRNG (session ids, keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS CSPRNG does not fail on the platforms the runner supports; a failure leaves
    // zeros, which the cases would report as a collision rather than hide.
    let _ = getrandom::fill(&mut b);
    b
}

/// A fresh random session id (`LINK-16`).
pub fn random_session() -> SessionId {
    SessionId(random_bytes::<8>())
}
