//! The relay cases (`spec/03-relay-link.md`): the runner plays hosts and controllers
//! through the relay under test, speaking raw frames, and asserts the exact close code the
//! spec names for each violation.
//!
//! Case ids are `REQUIREMENT/what`; a case checks the requirement in its id, and may check
//! others on the way (every `GOAWAY` the relay sends must be followed by the end of the
//! link, `LINK-27`; every frame it sends must decode strictly, `LINK-30`).
//!
//! | module | sections | requirements |
//! |---|---|---|
//! | [`framing`] | 3.1 to 3.3, 3.5, 3.8.1 | `LINK-1` to `LINK-8`, `LINK-40`, `LINK-41`, `LINK-44`, `LINK-45` |
//! | [`auth`] | 3.4, 3.5 | `LINK-9` to `LINK-14` |
//! | [`sessions`] | 3.6, 3.7 | `LINK-15` to `LINK-23` |
//! | [`liveness`] | 3.8, 3.9 | `LINK-24` to `LINK-27`, `LINK-42` |
//! | [`encoding`] | 3.2 | `LINK-30` to `LINK-34` |
//! | [`reconfigure`] | 3.10 | `LINK-37` |
//! | [`pipelining`] | 3.5 | `LINK-38` |

pub mod auth;
pub mod encoding;
pub mod framing;
pub mod liveness;
pub mod pipelining;
pub mod reconfigure;
pub mod sessions;
