//! The runner's side of a host under test: the target description, what the runner may ask
//! of the host's operator ([`HostAdmin`]: mint a token, revoke a device, switch remote
//! access), and a controller built from `tether-proto`'s sans-IO pieces that can also
//! misbehave on purpose ([`ChannelSession`], [`raw_message1`]).
//!
//! The runner reaches the host through a relay (the one the host joined) as a controller:
//! it connects with the workspace credential, sends `OPEN` with a message 1 it wrote itself,
//! reads message 2 from the first `DATA` of the session, and then speaks JSON-RPC inside
//! Noise transport messages, logging every plaintext it sends and receives.
//!
//! | module | what |
//! |---|---|
//! | [`device`] | the host's identity, a controller device, the paired device |
//! | [`handshake`] | message 1 and the host's answer |
//! | [`channel`] | an established session: JSON-RPC, `command/exec` |
//! | [`pairing`] | the shared paired device and its sessions |
//! | [`records`] | records and windows, counted by the runner (`CHAN-31` to `CHAN-36`) |
//!
//! The host target itself ([`HostTarget`]) is in [`crate::context`], the operator's side
//! ([`HostAdmin`]) in [`crate::admin`]; both are re-exported here.

pub mod channel;
pub mod device;
pub mod handshake;
pub mod pairing;
pub mod records;

pub use crate::admin::{
    BoxFuture, CommandAdmin, GivenTokens, HostAdmin, Instance, fill_template, find_token,
    run_shell, write_credential_file,
};
pub use crate::context::{HostTarget, host_target};
pub use crate::outcome::{Res, Stop, check, hfail, skip};
pub use channel::{ChannelSession, ExecRun, HOST_WAIT, HostMessage};
pub use device::{Device, Identity, PairedDevice};
pub use handshake::{Opened, open, open_with, pair_payload, raw_message1, send_message1};
pub use pairing::{
    MAX_TESTABLE_INACTIVE, MIN_TESTABLE_INACTIVE, WAIT, credential_of, drain, fresh_token, paired,
    paired_timestamps, relay_of, session, session_capture, session_with, wait_for_host,
};
pub use records::{Record, Records};
