//! Every numeric limit of the protocol, in one place (`spec/06-registries.md`, "Limits").
//!
//! Each constant names the requirement that fixes it. Implementations that drive the
//! state machines in this crate get these limits enforced for them; anything else that
//! enforces a limit (the tokio drivers) reads it from here.

use std::time::Duration;

/// Protocol version carried in tokens, `HELLO` and handshake payloads (`TOKEN-2`, `LINK-3`).
pub const PROTOCOL_VERSION: u8 = 1;

/// Default lifetime of a pairing token (`TOKEN-9`).
pub const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime a host may give a pairing token (`TOKEN-9`).
pub const TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(600);
/// Longest text form of a pairing token, in characters (`TOKEN-12`).
pub const TOKEN_MAX_TEXT_LEN: usize = 1024;

/// Largest relay frame, type byte included: a `DATA` frame with a full Noise message (`LINK-5`).
pub const MAX_FRAME_LEN: usize = 1 + 8 + MAX_NOISE_MESSAGE_LEN;
/// Largest frame a relay accepts before a link is authenticated (`LINK-6`).
pub const PRE_AUTH_MAX_FRAME_LEN: usize = 512;
/// Largest Noise handshake message carried in `OPEN` / `INCOMING` (`LINK-15`).
pub const MAX_HANDSHAKE_LEN: usize = 512;
/// Time from link establishment until the relay must have sent `READY` (`LINK-7`).
pub const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// A link on which nothing has been received for this long is closed (`LINK-24`).
pub const LINK_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A peer that has sent nothing for this long sends `PING` (`LINK-25`).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Concurrent sessions per registered host (`LINK-20`).
pub const MAX_SESSIONS_PER_HOST: usize = 64;
/// Concurrent sessions per controller link (`LINK-20`).
pub const MAX_SESSIONS_PER_CONTROLLER_LINK: usize = 16;
/// Bytes of `DATA` a relay holds for one session and direction before it closes the
/// session with `SLOW_READER` (`LINK-22`).
pub const SESSION_QUEUE_BYTES: usize = 256 * 1024;
/// Bytes a relay holds for one link, all sessions and control frames together, before it
/// closes the link with `SLOW_READER` (`LINK-23`).
pub const LINK_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Largest Noise message (Noise spec, section 3).
pub const MAX_NOISE_MESSAGE_LEN: usize = 65_535;
/// Largest plaintext in one transport message: a Noise message less the AEAD tag (`CHAN-16`).
pub const MAX_TRANSPORT_PLAINTEXT_LEN: usize = MAX_NOISE_MESSAGE_LEN - 16;
/// Transport messages per direction between two rekeys (`CHAN-19`).
pub const REKEY_INTERVAL: u64 = 65_536;
/// Window of each direction of a session with records before any `WINDOW` (`CHAN-34`).
pub const INITIAL_WINDOW: u64 = 16_384;
/// Most credit a receiver grants one session; also the largest window and the largest
/// `WINDOW` increment (`CHAN-35`, `CHAN-32`).
pub const MAX_SESSION_CREDIT: u64 = 258_048;
/// Most credit a receiver grants over all sessions of its relay link (`CHAN-35`).
pub const MAX_LINK_CREDIT: u64 = 2_097_152;
/// Smallest `WINDOW` increment (`CHAN-32`).
pub const MIN_WINDOW_INCREMENT: u64 = 4_096;
/// Credit a receiver restores once consuming took it below this (`CHAN-36`).
pub const MIN_CREDIT: u64 = 8_192;
/// Largest command-protocol message in a session with records (`CHAN-33`, `CMD-2`).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// How far ahead of the host's clock a message-1 timestamp may be (`CHAN-11`).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);
/// Time a controller waits for message 2 (`CHAN-13`); pairing with confirmation waits
/// [`CONFIRM_TIMEOUT`] more.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a host waits for its user to confirm a pairing code (`CHAN-24`).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// Message-1 handshakes of senders that are not paired devices a host processes per
/// second, in one shared token bucket (`CHAN-14`).
pub const HANDSHAKE_RATE_PER_SEC: u32 = 50;
/// Burst size of that token bucket (`CHAN-14`).
pub const HANDSHAKE_BURST: u32 = 100;
/// Message 1s a host reads per second (one Diffie-Hellman each, to learn the claimed
/// static key), in one global token bucket taken before any DH (`CHAN-14`).
pub const HANDSHAKE_READ_RATE_PER_SEC: u32 = 5000;
/// Burst size of that token bucket (`CHAN-14`).
pub const HANDSHAKE_READ_BURST: u32 = 5000;
/// Message-1 handshakes per second of one paired device, in that device's own token
/// bucket (`CHAN-30`).
pub const DEVICE_HANDSHAKE_RATE_PER_SEC: u32 = 5;
/// Burst size of a device's own token bucket (`CHAN-30`).
pub const DEVICE_HANDSHAKE_BURST: u32 = 10;

/// Deepest nesting of JSON arrays and objects in a command message (`CMD-4`).
pub const MAX_JSON_DEPTH: usize = 32;
/// Time a host waits for an approval decision before it counts as `decline` (`CMD-31`).
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest raw chunk of output in one `outputDelta` notification (`CMD-40`).
pub const MAX_OUTPUT_CHUNK: usize = 16 * 1024;
/// Default output cap of `command/exec` (`CMD-41`).
pub const DEFAULT_OUTPUT_CAP: u64 = 1024 * 1024;
/// Largest output cap of a `command/exec` whose output is returned in its result (no
/// `streamStdoutStderr`), and its default there (`CMD-41`, `CMD-43`): small enough that
/// the result fits in one message of 65 519 bytes whatever the bytes are (a byte may
/// take 6 in JSON text).
pub const MAX_BUFFERED_OUTPUT: u64 = 8 * 1024;
/// Default time limit of `command/exec` (`CMD-42`).
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest AGENTS.md content a host includes, all files together (`CMD-50`).
pub const AGENTS_MD_MAX_BYTES: usize = 32 * 1024;
