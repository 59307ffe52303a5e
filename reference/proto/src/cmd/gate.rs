//! The host's gate for one session's command-protocol messages (`spec/05`): what is
//! answered with an error before a method runs, what is ignored, and when the session is
//! closed — without I/O.
//!
//! ```text
//!   request ──► access (CMD-55, CMD-56, CMD-75) ──► in flight (CMD-58) ──► initialized
//!               refused: error, then CLOSE          -32001                 (CMD-15) -32002
//!           ──► method served (CMD-12, CMD-16) ──► params (CMD-13) ──► Inbound::Request
//!               -32601                             -32602               (or Initialize)
//!   notification ──► ignored before `initialize` succeeded or from a refused device
//!                    (CMD-15, CMD-55); `initialized` ──► Inbound::Ready
//!   response     ──► from a refused device: CLOSE (CMD-75); else Inbound::Response, for
//!                    the approvals (CMD-30) — any other response is ignored (CMD-14)
//! ```
//!
//! The order is `CMD-61`'s: the first rule broken decides the error. The envelope rules
//! (`CMD-1`..`CMD-11`) come before, in [`super::Message::parse_or_reject`].

use super::MAX_IN_FLIGHT_REQUESTS;
use super::envelope::{ErrorResponse, Id, Message};
use super::error::CommandError;
use super::methods::{ClientNotification, ClientRequest, InitializeParams, Params};
use crate::link::codes::CloseCode;

/// Whether the session's device may still use it, checked against the host's state when
/// each message arrives (`CMD-75`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// It may.
    Allowed,
    /// Remote access is switched off (`CMD-55`).
    RemoteAccessDisabled,
    /// The device was revoked, expired or is unknown (`CMD-56`).
    NotAuthorized,
}

impl Access {
    /// The error and the close code of a refused device, or `None` when allowed.
    pub fn refusal(self) -> Option<(CommandError, CloseCode)> {
        match self {
            Self::Allowed => None,
            Self::RemoteAccessDisabled => Some((
                CommandError::RemoteAccessDisabled,
                CloseCode::REMOTE_ACCESS_DISABLED,
            )),
            Self::NotAuthorized => Some((CommandError::NotAuthorized, CloseCode::NOT_AUTHORIZED)),
        }
    }
}

/// What the host does with one message of the controller.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Inbound {
    /// A request past every check: the method's own rules decide its answer.
    Request {
        /// Its id.
        id: Id,
        /// The request.
        request: ClientRequest,
    },
    /// `initialize` was accepted (`CMD-15`): answer `id` with the host's `initialize`
    /// result. The session is initialized from now on.
    Initialize {
        /// Its id.
        id: Id,
        /// Its params.
        params: InitializeParams,
    },
    /// Send this error answer; then, with `close`, close the session with that code
    /// (`CMD-55`, `CMD-56`).
    Refused {
        /// The error response.
        reply: Message,
        /// Close the session after it.
        close: Option<CloseCode>,
    },
    /// `initialized` arrived: the host may now send requests and notifications on the
    /// session (`CMD-15`).
    Ready,
    /// `tether/cancelled` (`CMD-57`).
    Cancel {
        /// The id of the request to cancel.
        request_id: Id,
    },
    /// A response or error response, for the approvals (`CMD-30`, `CMD-32`, `CMD-14`).
    Response(Message),
    /// Close the session with this code: a refused device answered (`CMD-75`).
    Close(CloseCode),
    /// Nothing to do (`CMD-12`, `CMD-13`, `CMD-15`, `CMD-55`: ignored).
    Ignored,
}

/// One session's gate. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct SessionGate {
    initialized: bool,
    ready: bool,
}

impl SessionGate {
    /// A session that has not seen `initialize`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `initialize` succeeded.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Whether `initialized` arrived (the host may send requests and notifications).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Classifies one message. `access` is the device's standing when it arrived
    /// (`CMD-75`), `in_flight` the session's requests received and not yet answered
    /// (`CMD-58`), `serves` whether this host offers a method (`CMD-16`).
    pub fn handle(
        &mut self,
        message: Message,
        access: Access,
        in_flight: usize,
        serves: impl Fn(&str) -> bool,
    ) -> Inbound {
        let refused = access.refusal();
        match message {
            Message::Request(request) => {
                let id = request.id.clone();
                let refuse = |e: &CommandError, close| Inbound::Refused {
                    reply: Message::Error(ErrorResponse::new(Some(id.clone()), e)),
                    close,
                };
                // CMD-61 order. CMD-55, CMD-56:
                if let Some((e, code)) = refused {
                    return refuse(&e, Some(code));
                }
                // CMD-58
                if in_flight >= MAX_IN_FLIGHT_REQUESTS {
                    return refuse(&CommandError::Overloaded, None);
                }
                let is_initialize = request.method == InitializeParams::METHOD;
                // CMD-15
                if !self.initialized && !is_initialize {
                    return refuse(&CommandError::NotInitialized, None);
                }
                // CMD-12, CMD-16: before the params are looked at.
                if !is_initialize && !serves(&request.method) {
                    let method = request.method.clone();
                    return refuse(&CommandError::MethodNotFound { method }, None);
                }
                // CMD-13, CMD-43, CMD-53
                let parsed = match ClientRequest::from_request(&request) {
                    Ok(p) => p,
                    Err(e) => return refuse(&e, None),
                };
                match parsed {
                    ClientRequest::Initialize(params) => {
                        // CMD-15
                        if self.initialized {
                            return refuse(&CommandError::AlreadyInitialized, None);
                        }
                        if let Err(e) = params.check_version() {
                            return refuse(&e, None);
                        }
                        self.initialized = true;
                        Inbound::Initialize { id, params }
                    }
                    request => Inbound::Request { id, request },
                }
            }
            // CMD-75: a response of a refused device is ignored — an approval answer
            // included — and the session is closed as for a request.
            Message::Response(_) | Message::Error(_) if refused.is_some() => {
                refused.map_or(Inbound::Ignored, |(_, code)| Inbound::Close(code))
            }
            // CMD-55, CMD-75: notifications of a refused device are ignored; CMD-15: so
            // are notifications before initialize.
            Message::Notification(_) if refused.is_some() || !self.initialized => Inbound::Ignored,
            Message::Notification(n) => match ClientNotification::from_notification(&n) {
                Ok(ClientNotification::Cancelled(p)) => Inbound::Cancel {
                    request_id: p.request_id,
                },
                Ok(ClientNotification::Initialized(_)) => {
                    self.ready = true;
                    Inbound::Ready
                }
                // CMD-12, CMD-13: unknown or malformed notifications are ignored.
                Err(_) => Inbound::Ignored,
            },
            response @ (Message::Response(_) | Message::Error(_)) => Inbound::Response(response),
        }
    }
}
