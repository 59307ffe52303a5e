//! The relay link (`spec/03-relay-link.md`, requirements `LINK-*`).
//!
//! - [`frame`]: the [`RelayFrame`] codec, one frame per WebSocket binary message.
//! - [`codes`]: the [`CloseCode`] registry carried by `GOAWAY` and `CLOSE`, with the
//!   requirement behind each code.
//! - [`url`]: the [`RelayUrl`] parser and the `LINK-2` transport rule.
//! - [`client`]: [`LinkClient`], the client end of a link (host or controller).
//! - [`registration`]: host registration (`Noise_XN`, `LINK-12`).
//! - [`router`]: the relay's side, its routing state machine.

pub mod client;
pub mod codes;
mod error;
pub mod frame;
pub mod registration;
pub mod router;
pub mod url;

pub use client::{ClientConfig, ClientError, Incoming, LinkClient, LinkEnd, LinkEvent};
pub use codes::CloseCode;
pub use error::LinkError;
pub use frame::{FrameError, RelayFrame, Role, SessionId};
pub use url::{RelayUrl, UrlError};
