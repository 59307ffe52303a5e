//! `tether-store`: the durable files of the reference host and controller, on Unix.
//!
//! What it is: the one atomic replace both state directories are written with
//! ([`write_atomic`]: a temporary file in the target's directory, fsync, rename over the
//! target, fsync of the directory), the exclusive lock file every read-modify-write of a
//! state directory holds ([`FileLock`]), the owner-only directory they live in
//! ([`create_private_dir`]), and the fault injection the reliability tests crash writes
//! with ([`fault`]). What it is not: a format. What the files hold, and the checks on
//! opening a directory, belong to `tether-host` (`state`) and `tether-controller`
//! (`state`).
//!
//! The rules it serves are `SEC-1` (a static private key only its account can read: files
//! are created with the mode the caller gives, 0600 for keys and state, in a 0700
//! directory) and the durability `spec/04-secure-channel.md` asks of the replay state
//! (`CHAN-10`, `CHAN-12`: stored and synced before the answer): a crash at any point of a
//! write leaves either the old file or the new one, never a mix.

mod atomic;
mod error;
pub mod fault;
mod lock;

pub use atomic::{Staged, stage, write_atomic};
pub use error::StoreError;
pub use lock::{FileLock, create_private_dir};
