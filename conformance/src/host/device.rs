//! Who the runner is to a host: the host's identity from its token, a controller device
//! (a static key and the last timestamp it sent), and the device it paired.

use std::fmt;

use tether_proto::channel::Timestamp;
use tether_proto::keys::public_key;
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::random::random_bytes;

/// What the runner learnt from the host's first token.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The token's text.
    pub token_text: String,
    /// The decoded token.
    pub token: PairingToken,
    /// When the runner got it.
    pub received_at: UnixTime,
}

impl Identity {
    /// The host's static key.
    pub fn host_key(&self) -> [u8; 32] {
        *self.token.host_key()
    }

    /// The host's workspace.
    pub fn workspace(&self) -> &str {
        self.token.workspace()
    }
}

/// A controller identity: a static key and the last timestamp it sent (`CHAN-5`).
#[derive(Clone)]
pub struct Device {
    /// Static private key.
    pub private: [u8; 32],
    /// Static public key.
    pub public: [u8; 32],
    /// The name it pairs under.
    pub name: String,
    /// The last message-1 timestamp sent.
    pub last: Option<Timestamp>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({}, {})", self.name, hex::encode(self.public))
    }
}

impl Device {
    /// A fresh random device named `conf-<what>-<hex>`.
    pub fn fresh(what: &str) -> Self {
        let private = random_bytes::<32>();
        Self {
            private,
            public: public_key(&private),
            name: format!("conf-{what}-{}", hex::encode(random_bytes::<4>())),
            last: None,
        }
    }

    /// The next timestamp (`CHAN-5`), remembered as sent.
    pub fn next_timestamp(&mut self) -> Timestamp {
        let t = Timestamp::next_after(self.last, UnixTime::now());
        self.last = Some(t);
        t
    }
}

/// The device the runner pairs once and uses for every case that needs a paired
/// controller.
#[derive(Clone, Debug)]
pub struct PairedDevice {
    /// The host's identity, from the token used to pair.
    pub identity: Identity,
    /// The device.
    pub device: Device,
    /// The timestamp of the pairing handshake.
    pub paired_with: Timestamp,
    /// When the runner last sent a message 1 the host accepted for this device (the
    /// pairing or a session): the host's inactivity age (`CHAN-9`) runs from about then.
    pub last_accepted: std::time::Instant,
}
