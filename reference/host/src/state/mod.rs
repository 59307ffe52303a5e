//! The host's state directory (`--state DIR`): its static key, paired devices, pairing
//! tokens and settings, kept durably.
//!
//! ```text
//! DIR/            mode 0700
//!   host.key      the 32-byte static X25519 private key, hex, mode 0600
//!   host.json     {version, devices, tokens, config}, mode 0600
//!   run.json      {relay, workspace, hostName}: written by `tether host run`
//!   lock          the lock file every read-modify-write holds (exclusive, fs4)
//! ```
//!
//! Every write is an atomic replace ([`write_atomic`], from `tether-store`): the new
//! content goes to a temporary file in `DIR`, which is fsynced, renamed over the old file,
//! and the directory is fsynced. A crash at any point leaves either the old or the new
//! file, never a mix. Every read-modify-write of `host.json` holds an exclusive lock on
//! `DIR/lock` for its duration, so `tether host pair` and `tether host revoke` in other
//! processes and a running host can share one directory: the running host re-reads the
//! file under the lock on every [`HostStore`](tether_proto::session::HostStore) call.
//!
//! A file that does not parse, or that names a version this host does not know, gives a
//! [`StateError`]; it is never overwritten.
//!
//! The files of this module, from the bottom up: `error` (the file names and
//! [`StateError`]), `model` ([`HostState`] and its rules), `migrate` (older `host.json`
//! layouts), `disk` (the `host.json` format), `lock` (the lock, and knowing when another
//! process changed `host.json`), `placement` (where the directory and the credential may
//! be, `SEC-22`, `SEC-23`), `dir` ([`StateDir`]) and `store` ([`DiskHostStore`]). None
//! refers to one above it.

mod dir;
mod disk;
mod error;
mod lock;
mod migrate;
mod model;
mod placement;
mod store;

pub use dir::StateDir;
pub use disk::{RunInfo, parse_state, render_state};
pub use error::{
    KEY_FILE, LOCK_FILE, RUN_FILE, STATE_FILE, STATE_VERSION, StateError, random_bytes,
};
pub use lock::{RACY_RECHECK, RACY_WINDOW, StateLock, StateSnapshot};
pub use model::{Access, Device, HostSettings, HostState, TokenRecord};
pub use placement::{
    CREDENTIAL_ENV, check_state_placement, read_credential_file, state_dir_exposed,
};
pub use store::DiskHostStore;
pub use tether_store::{Staged, fault, stage, write_atomic};
