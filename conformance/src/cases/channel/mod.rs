//! The secure-channel cases (`spec/04-secure-channel.md`): the runner plays controllers
//! through the relay the host joined, pairs with the host's tokens, and sends correct and
//! broken handshakes and transport messages, checking the exact `CLOSE` code the spec
//! names.
//!
//! Most cases use one device the runner pairs once with the first token
//! ([`host::paired`](crate::host::paired())); cases that need a token of their own (consumed,
//! wrong secret, expired, revoked) take one more and are skipped, with the reason, when the
//! runner has none left.
//!
//! | module | sections | requirements |
//! |---|---|---|
//! | [`handshake`] | 4.1 to 4.6 | `CHAN-1` to `CHAN-8` |
//! | [`decision`] | 4.7 | `CHAN-9` to `CHAN-14` |
//! | [`transport`] | 4.9 | `CHAN-16` to `CHAN-21` |
//! | [`admission`] | 4.5, 4.7 | `CHAN-25` to `CHAN-29` |
//! | [`flood`] | 4.7.1 | `CHAN-30` |
//! | [`records`] | 4.13 | `CHAN-31` to `CHAN-36` |

pub mod admission;
pub mod decision;
pub mod flood;
pub mod handshake;
pub mod records;
pub mod transport;
