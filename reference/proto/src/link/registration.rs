//! Host registration with a relay: `Noise_XN_25519_ChaChaPoly_BLAKE2s` (`LINK-12`).
//!
//! STUB.
