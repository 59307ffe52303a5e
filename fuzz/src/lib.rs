//! Shared pieces of the Tether fuzz targets: fixed keys, tokens and host configuration,
//! so that every target and its seeds agree on them.

use std::time::Instant;

use tether_proto::channel::{HostInfo, PathStyle};
use tether_proto::session::{HostConfig, MemoryHostStore};

/// The host's static private key.
pub const HOST_PRIVATE: [u8; 32] = [0x11; 32];
/// The workspace everything runs in.
pub const WORKSPACE: &str = "acme";
/// Wall clock of every run (UNIX seconds).
pub const WALL0: u64 = 1_800_000_000;
/// Private keys of the honest controllers; index 0 is paired with the host.
pub const CONTROLLERS: [[u8; 32]; 3] = [[0x21; 32], [0x22; 32], [0x23; 32]];
/// Pairing tokens the host minted: (id, secret), valid until WALL0 + 300.
pub const TOKENS: [([u8; 16], [u8; 32]); 2] = [([0x40; 16], [0x50; 32]), ([0x41; 16], [0x51; 32])];
/// Insecure-crypto static "public key" of a paired device a fuzzer can name in a raw
/// message 1 without computing X25519 (see `tether_proto::fuzzing`).
pub const RAW_DEVICE: [u8; 32] = [0x77; 32];

/// What message 2 says.
pub fn host_info() -> HostInfo {
    HostInfo {
        name: "fuzz-host".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        shell: "sh".into(),
        path_style: PathStyle::Posix,
        capabilities: vec!["agent.test".into()],
        protocol: "tether/1".into(),
    }
}

/// The host's configuration.
pub fn host_config(confirm_pairing: bool) -> HostConfig {
    HostConfig {
        static_private: HOST_PRIVATE,
        workspace: WORKSPACE.into(),
        host_info: host_info(),
        remote_access: true,
        confirm_pairing,
    }
}

/// A store with both tokens, controller 0 and [`RAW_DEVICE`] paired.
pub fn host_store() -> MemoryHostStore {
    use tether_proto::channel::Timestamp;
    use tether_proto::session::HostStore;
    use tether_proto::time::UnixTime;
    let mut store = MemoryHostStore::new();
    for (id, secret) in &TOKENS {
        store.add_token(*id, secret, WALL0 + 300);
    }
    let old = Timestamp::from_unix(UnixTime::from_secs(WALL0 - 3600));
    let wall = UnixTime::from_secs(WALL0 - 3600);
    let paired = tether_proto::keys::public_key(&CONTROLLERS[0]);
    // MemoryHostStore::record_device never fails.
    let _ = store.record_device(&paired, "paired", old, wall);
    let _ = store.record_device(&RAW_DEVICE, "raw", old, wall);
    store
}

/// One instant shared by a run (the state machines only compare instants).
pub fn start() -> Instant {
    Instant::now()
}

/// Starts one fuzz input: insecure crypto on or off, random numbers restarted.
pub fn begin(insecure: bool) {
    #[cfg(fuzzing)]
    {
        tether_proto::fuzzing::set_insecure_crypto(insecure);
        tether_proto::fuzzing::reset_rng();
    }
    #[cfg(not(fuzzing))]
    let _ = insecure;
}
