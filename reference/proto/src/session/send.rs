//! The one send path of both session state machines (`CHAN-34`, `CHAN-20`).

use std::collections::VecDeque;

use crate::channel::{Flow, Transport};
use crate::link::{CloseCode, RelayFrame, SessionId};

/// Encrypts whatever `flow` lets go now (`CHAN-34`) and queues each as a `DATA` frame of
/// `session`; the close code to end the session with if encryption failed (`CHAN-20`).
/// The one send path of both state machines.
pub(super) fn pump(
    transport: &mut Transport,
    flow: &mut Flow,
    session: SessionId,
    transmits: &mut VecDeque<RelayFrame>,
) -> Result<(), CloseCode> {
    let mut plaintext = Vec::new();
    loop {
        plaintext.clear();
        if !flow.next_plaintext(&mut plaintext) {
            return Ok(());
        }
        let mut payload = Vec::new();
        transport
            .encrypt(&plaintext, &mut payload)
            .map_err(|e| e.close_code())?;
        transmits.push_back(RelayFrame::Data { session, payload });
    }
}
