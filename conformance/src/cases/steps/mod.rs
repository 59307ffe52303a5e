//! Steps the cases share: named sequences (register a host, open a session, expect a
//! `GOAWAY`, pair and revoke a device, run a command under a sandbox mode) instead of the
//! same lines in every case.

pub(crate) mod devices;
pub(crate) mod exec;
pub(crate) mod handshake;
pub(crate) mod records;
pub(crate) mod relay;
pub(crate) mod rpc;
pub(crate) mod sandbox;
pub(crate) mod threads;
