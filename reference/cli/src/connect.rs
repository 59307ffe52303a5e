//! `tether connect`: a local bridge from any Codex app-server client to a paired host.
//!
//! The bridge listens for WebSocket connections on a loopback address. Each connection
//! gets a link of its own to the host's relay and a secure-channel session of its own to
//! the host (`spec/04`); every text frame the client sends is one command-protocol
//! message on the session, and every message the host sends is one text frame to the
//! client. Messages pass unchanged, with two exceptions the client cannot do itself:
//!
//! - an `initialize` request that does not name the Tether protocol version gets it (the
//!   members of the controller's own `initialize` params that name the protocol, not its
//!   `clientInfo` or `capabilities`), so that a plain app-server client is served as a
//!   Tether controller;
//! - an `OUTPUT` record of a session with records (`CMD-76`) reaches the client as the
//!   `command/exec/outputDelta` notification it stands for (chunks of at most 16 KiB,
//!   `CMD-40`), since an app-server client knows only the notification.
//!
//! Records, flow control and the session's message limit are the controller library's:
//! the host sends no faster than the client reads (`CHAN-36`), and a message longer than
//! the session carries is refused with a WebSocket close, as is a binary frame.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tether_controller::{
    ControllerState, LinkOptions, PairedHost, Session, SessionEnd, SessionEvent, SessionOptions,
    connect_session, initialize_params,
};
use tether_proto::channel::OutputChunk;
use tether_proto::cmd::methods::{CommandExecOutputDeltaParams, encode_delta};
use tether_proto::cmd::types::OutputStream;
use tether_proto::cmd::{Message, Notification, Params};
use tether_proto::limits::{MAX_MESSAGE_LEN, MAX_OUTPUT_CHUNK};
use tether_proto::link::CloseCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::controller::{RelayOptions, describe, host_label, open_state, runtime};

/// The `--help` text after the options.
pub(crate) const CONNECT_HELP: &str = "\
Example:
  $ tether connect --state ~/.tether build-box
  ws://127.0.0.1:41807
  (then point an app-server client at ws://127.0.0.1:41807)

The messages the command protocol shares with Codex's app-server protocol are Codex's
(spec section 5.1.4), so a client that uses those methods works through the bridge. The
Codex terminal UI (codex --remote URL) also asks for methods only Codex has (account/read,
model/list, config/read, ...), which a Tether host answers with -32601 today.

The first line on stdout is the URL to give the client, printed once the bridge listens.
Every WebSocket connection is a session of its own to the host, through its relay, as
this controller (the host sees this controller's device name). One text frame carries
one JSON-RPC message, both ways. A binary frame, or a message longer than the session
carries (16 MiB with a host that offers records), closes the connection with a reason;
so does the end of the session (host gone, relay lost), and closing the connection ends
the session. Ctrl-C closes every connection and stops (exit status 0).

Any program on this computer that can reach the address drives the host as this
controller: the bridge listens on loopback only (127.0.0.1 or ::1) unless
--allow-non-loopback is given, and refuses WebSocket handshakes that carry an Origin
header (web pages in a browser).";

/// Arguments of `tether connect`.
#[derive(Args)]
pub(crate) struct ConnectArgs {
    /// The paired host: its name or a prefix of its key or fingerprint (needed when
    /// several hosts are paired).
    #[arg(value_name = "HOST")]
    host: Option<String>,
    /// The controller's state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The address to listen on for WebSocket clients; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Listen on an address that is not loopback. Whoever can reach it drives the host
    /// with this controller's pairing, with no authentication of its own.
    #[arg(long)]
    allow_non_loopback: bool,
    #[command(flatten)]
    relay: RelayOptions,
}

/// How long a closing connection waits for its client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        eprintln!(
            "tether: connect: --listen {} is not a loopback address: whoever reaches it would \
             drive the host with this controller's pairing, unauthenticated; listen on \
             127.0.0.1 or ::1, or give --allow-non-loopback to mean it",
            args.listen
        );
        return Ok(ExitCode::from(2));
    }
    let state = match open_state(&args.state) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let host = match state.find_host(args.host.as_deref()) {
        Ok(h) => h,
        Err(e) => return Ok(crate::controller::fail("connect", &e)),
    };
    let options = args.relay.link_options();
    let rt = runtime()?;
    rt.block_on(serve(state, host, options, args.listen))
}

async fn serve(
    state: ControllerState,
    host: PairedHost,
    options: LinkOptions,
    listen: SocketAddr,
) -> anyhow::Result<ExitCode> {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tether: connect: cannot listen on {listen}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let local = listener.local_addr()?;
    let interrupted = shutdown_signal()?;
    tokio::pin!(interrupted);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ws://{local}")?;
        out.flush()?;
    }
    eprintln!(
        "tether: bridging ws://{local} to host {}; Ctrl-C stops",
        host_label(&host)
    );
    let bridge = Arc::new(Bridge {
        state,
        host,
        options,
        opening: tokio::sync::Mutex::new(()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let bridge = Arc::clone(&bridge);
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { bridge.serve_client(stream, peer, stop).await });
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the others.
                    eprintln!("tether: connect: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut interrupted => break,
        }
    }
    eprintln!("tether: connect: stopping; closing every connection");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    Ok(ExitCode::SUCCESS)
}

/// A future resolving on Ctrl-C or SIGTERM, its handlers installed now: a signal that
/// arrives as soon as the URL is printed stops the bridge cleanly, not by its default
/// action.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// What every connection needs to reach the host.
struct Bridge {
    state: ControllerState,
    host: PairedHost,
    options: LinkOptions,
    /// Held from taking a message-1 timestamp until the handshake is done: the host
    /// refuses a timestamp not greater than the last it accepted from this controller
    /// (`CHAN-5`, `CHAN-10`), so two sessions opened at once on two links could reach it
    /// out of order and the later-stamped one, arriving first, would get the other
    /// refused as a replay.
    opening: tokio::sync::Mutex<()>,
}

/// Why a connection ends, and what its client is told.
struct Ending {
    code: WsCode,
    reason: String,
}

impl Ending {
    fn new(code: WsCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl Bridge {
    async fn serve_client(&self, stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        // A message the session cannot carry is read whole only up to twice the largest
        // one (then refused with 1009 all the same), so a client cannot make the bridge
        // buffer without bound.
        let config = WebSocketConfig::default()
            .max_message_size(Some(2 * MAX_MESSAGE_LEN))
            .max_frame_size(Some(2 * MAX_MESSAGE_LEN));
        let ws =
            tokio_tungstenite::accept_hdr_async_with_config(stream, refuse_browsers, Some(config));
        let mut ws = match tokio::time::timeout(Duration::from_secs(10), ws).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                eprintln!("tether: connect: WebSocket handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => {
                eprintln!("tether: connect: {peer} sent no WebSocket handshake within 10 s");
                return;
            }
        };
        let label = host_label(&self.host);
        let open = async {
            let _turn = self.opening.lock().await;
            connect_session(
                &self.state,
                &self.host,
                &self.options,
                SessionOptions::pass_through(),
            )
            .await
        };
        let opened = tokio::select! {
            r = open => Some(r),
            () = stopped(stop.clone()) => None,
        };
        let (link, mut session) = match opened {
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                let reason = format!("cannot reach host {label}: {}", describe(&e));
                eprintln!("tether: connect: {peer}: {reason}");
                close_ws(&mut ws, Ending::new(WsCode::Error, reason)).await;
                return;
            }
            None => {
                close_ws(
                    &mut ws,
                    Ending::new(WsCode::Away, "tether connect is stopping"),
                )
                .await;
                return;
            }
        };
        eprintln!("tether: connect: {peer}: session open to host {label}");
        let ending = forward(&mut ws, &mut session, stop, &label).await;
        match &ending {
            Some(e) => eprintln!("tether: connect: {peer}: closed: {}", e.reason),
            None => eprintln!("tether: connect: {peer}: the client closed the connection"),
        }
        if let Some(ending) = ending {
            close_ws(&mut ws, ending).await;
        }
        session.close(CloseCode::NORMAL).await;
        link.close(CloseCode::NORMAL).await;
    }
}

/// Refuses a handshake with an `Origin` header: browsers send one, app-server clients
/// do not, and a web page must not drive the host through a loopback port.
#[expect(
    clippy::result_large_err,
    reason = "the signature tungstenite's Callback requires"
)]
fn refuse_browsers(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.headers().contains_key("origin") {
        let mut refusal = ErrorResponse::new(Some(
            "tether connect refuses WebSocket handshakes from web pages (Origin header)".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        return Err(refusal);
    }
    Ok(response)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // A dropped sender means the bridge is gone: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

/// Forwards until one side ends; `None` when the client closed the connection (its close
/// frame is answered already).
async fn forward(
    ws: &mut WebSocketStream<TcpStream>,
    session: &mut Session,
    stop: watch::Receiver<bool>,
    label: &str,
) -> Option<Ending> {
    let max = session.max_message_len();
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    if text.len() > max {
                        return Some(too_big(text.len(), max));
                    }
                    let bytes = match complete_initialize(text.as_str()) {
                        Some(completed) if completed.len() <= max => completed.into_bytes(),
                        _ => text.as_bytes().to_vec(),
                    };
                    if session.send_plaintext(bytes).is_err() {
                        // The session ended: its event says how.
                        continue;
                    }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    return Some(Ending::new(
                        WsCode::Unsupported,
                        "binary frame: send each JSON-RPC message as one text frame",
                    ));
                }
                Some(Ok(WsMessage::Close(_))) => {
                    // tungstenite has queued the answering close frame: send it.
                    let _ = ws.flush().await;
                    return None;
                }
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(e))) => {
                    return Some(Ending::new(WsCode::Size, format!("{e}; the session carries {max} bytes")));
                }
                Some(Err(_)) | None => return None,
            },
            event = session.next_event() => {
                let text = match event {
                    Some(SessionEvent::Notification(n)) => Message::Notification(n).to_bytes(),
                    Some(SessionEvent::Request(r)) => Message::Request(r).to_bytes(),
                    Some(SessionEvent::UnmatchedResponse(m)) => m.to_bytes(),
                    Some(SessionEvent::Output(chunk)) => {
                        for delta in output_deltas(chunk) {
                            if send_text(ws, delta).await.is_err() {
                                return None;
                            }
                        }
                        continue;
                    }
                    Some(SessionEvent::Ended(end)) => return Some(session_ended(&end, label)),
                    None => return Some(Ending::new(WsCode::Away, format!("the session to host {label} ended"))),
                    // A malformed message from the host, answered by the session (CMD-11),
                    // and whatever later versions add: nothing for the client.
                    Some(_) => continue,
                };
                if send_text(ws, text).await.is_err() {
                    return None;
                }
            }
            () = &mut stop => return Some(Ending::new(WsCode::Away, "tether connect is stopping")),
        }
    }
}

fn too_big(len: usize, max: usize) -> Ending {
    Ending::new(
        WsCode::Size,
        format!("message of {len} bytes; the session carries at most {max}"),
    )
}

fn session_ended(end: &SessionEnd, label: &str) -> Ending {
    let why = describe(&end.clone().into());
    Ending::new(
        WsCode::Away,
        format!("the session to host {label} ended: {why}"),
    )
}

async fn send_text(ws: &mut WebSocketStream<TcpStream>, bytes: Vec<u8>) -> Result<(), WsError> {
    // The session's messages are JSON text (CMD-3); anything else would be a bug upstream.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    ws.send(WsMessage::text(text)).await
}

/// Sends a close frame with `ending`'s reason (cut to the 123 bytes a close frame holds,
/// at a character boundary) and waits a little for the client's.
async fn close_ws(ws: &mut WebSocketStream<TcpStream>, ending: Ending) {
    let frame = CloseFrame {
        code: ending.code,
        reason: close_reason(ending.reason).into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// `reason` cut to the 123 bytes a close frame holds (RFC 6455 5.5), at a character
/// boundary, with `...` at the cut.
fn close_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

/// The Tether protocol version for an `initialize` request whose params lack it: the
/// members of the controller's own `initialize` params other than `clientInfo` and
/// `capabilities` (the client's own), each added when the client's params lack it.
/// `None` (forward unchanged) for any other message, and for one that does not parse or
/// has no params object, which the host then refuses with its typed error.
fn complete_initialize(text: &str) -> Option<String> {
    let mut message: Value = serde_json::from_str(text).ok()?;
    let object = message.as_object_mut()?;
    if object.get("method")?.as_str()? != "initialize" || !object.contains_key("id") {
        return None;
    }
    let params = object.get_mut("params")?.as_object_mut()?;
    let Value::Object(ours) = serde_json::to_value(initialize_params()).ok()? else {
        return None;
    };
    let mut added = false;
    for (name, mut value) in ours {
        if name == "clientInfo" || name == "capabilities" || params.contains_key(&name) {
            continue;
        }
        // A member holding the protocol's own object: without this controller's
        // capability list, which the client never claimed.
        if let Value::Object(inner) = &mut value {
            inner.remove("capabilities");
        }
        params.insert(name, value);
        added = true;
    }
    added.then(|| message.to_string())
}

/// An `OUTPUT` record as the `command/exec/outputDelta` notifications it stands for
/// (`CMD-76`), cut at 16 KiB (`CMD-40`); `capReached` on the last piece only.
fn output_deltas(chunk: OutputChunk) -> Vec<Vec<u8>> {
    let stream = if chunk.stderr {
        OutputStream::Stderr
    } else {
        OutputStream::Stdout
    };
    let pieces: Vec<&[u8]> = if chunk.data.is_empty() {
        vec![&[]]
    } else {
        chunk.data.chunks(MAX_OUTPUT_CHUNK).collect()
    };
    let last = pieces.len().saturating_sub(1);
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let params = CommandExecOutputDeltaParams {
                process_id: chunk.process_id.clone(),
                stream,
                delta_base64: encode_delta(piece),
                cap_reached: chunk.cap_reached && i == last,
            };
            Message::Notification(Notification::new(
                CommandExecOutputDeltaParams::METHOD,
                Some(params.to_params()),
            ))
            .to_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn initialize_without_version_gets_it() {
        let text = r#"{"id":0,"method":"initialize","params":{"clientInfo":{"name":"codex-tui","title":null,"version":"0.169.0"}}}"#;
        let completed: Value = serde_json::from_str(&complete_initialize(text).unwrap()).unwrap();
        let ours = serde_json::to_value(initialize_params()).unwrap();
        // Whatever names the version in this revision's params is there, with our value.
        let mut named = false;
        for (name, value) in ours.as_object().unwrap() {
            if name == "clientInfo" || name == "capabilities" {
                continue;
            }
            named = true;
            let mut expected = value.clone();
            if let Value::Object(inner) = &mut expected {
                inner.remove("capabilities");
            }
            assert_eq!(completed["params"][name], expected, "{name}");
        }
        assert!(
            named,
            "the controller's initialize names the protocol version"
        );
        // The client's own members are untouched.
        assert_eq!(completed["params"]["clientInfo"]["name"], "codex-tui");
        assert_eq!(completed["id"], 0);
        assert!(completed["params"].get("capabilities").is_none());
    }

    #[test]
    fn other_messages_pass_unchanged() {
        for text in [
            r#"{"id":1,"method":"thread/start","params":{}}"#,
            r#"{"method":"initialize","params":{}}"#,
            r#"{"id":1,"method":"initialize"}"#,
            r#"{"id":1,"method":"initialize","params":[]}"#,
            "not json",
            r#"{"id":1,"result":{}}"#,
        ] {
            assert_eq!(complete_initialize(text), None, "{text}");
        }
        // Already complete: nothing to add.
        let full = serde_json::json!({
            "id": 1,
            "method": "initialize",
            "params": serde_json::to_value(initialize_params()).unwrap(),
        })
        .to_string();
        assert_eq!(complete_initialize(&full), None);
    }

    #[test]
    fn output_records_become_deltas_of_at_most_16_kib() {
        let chunk = OutputChunk {
            stderr: true,
            cap_reached: true,
            process_id: "p1".to_owned(),
            data: vec![b'x'; MAX_OUTPUT_CHUNK * 2 + 5],
        };
        let deltas: Vec<Value> = output_deltas(chunk)
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        assert_eq!(deltas.len(), 3);
        for (i, d) in deltas.iter().enumerate() {
            assert_eq!(d["method"], "command/exec/outputDelta");
            assert_eq!(d["params"]["processId"], "p1");
            assert_eq!(d["params"]["stream"], "stderr");
            assert_eq!(d["params"]["capReached"], i == 2);
        }
        let empty = OutputChunk {
            stderr: false,
            cap_reached: true,
            process_id: "p2".to_owned(),
            data: Vec::new(),
        };
        let deltas = output_deltas(empty);
        assert_eq!(deltas.len(), 1);
        let d: Value = serde_json::from_slice(&deltas[0]).unwrap();
        assert_eq!(d["params"]["deltaBase64"], "");
        assert_eq!(d["params"]["capReached"], true);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(close_reason("short".to_owned()), "short");
        let cut = close_reason("é".repeat(100));
        assert!(cut.len() <= 123, "{}", cut.len());
        assert!(cut.ends_with("..."));
        assert!("é".repeat(100).starts_with(cut.trim_end_matches("...")));
        let exact = "x".repeat(123);
        assert_eq!(close_reason(exact.clone()), exact);
    }
}
