//! One WebSocket connection: handshake, a reader that hands messages to the actor, and a
//! writer fed by the actor.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tether_proto::link::router::LinkId;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use crate::client::{LinkIo, relay_websocket_config};
use crate::input::{Finish, Input, LinkWriter};

/// Frames a link's writer holds beyond what the core queues (each at most 65544 bytes).
pub(crate) const WRITER_QUEUE: usize = 8;

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct ConnContext {
    pub(crate) actor: mpsc::Sender<Input>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_frame_len: usize,
}

type Ws = WebSocketStream<Box<dyn LinkIo>>;

/// Serves one accepted TCP connection until it closes.
pub(crate) async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: ConnContext) {
    let setup = async {
        let io: Box<dyn LinkIo> = match &ctx.tls {
            Some(acceptor) => Box::new(acceptor.accept(tcp).await.map_err(|e| e.to_string())?),
            None => Box::new(tcp),
        };
        // LINK-5: tungstenite refuses a larger message before buffering it.
        tokio_tungstenite::accept_async_with_config(
            io,
            Some(relay_websocket_config(ctx.max_frame_len)),
        )
        .await
        .map_err(|e| e.to_string())
    };
    let ws = match timeout(ctx.handshake_timeout, setup).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(%peer, "connection handshake failed: {e}");
            let _ = ctx.actor.send(Input::HandshakeFailed).await;
            return;
        }
        Err(_) => {
            debug!(%peer, "connection handshake timed out");
            let _ = ctx.actor.send(Input::HandshakeFailed).await;
            return;
        }
    };
    let (frames_tx, frames_rx) = mpsc::channel(WRITER_QUEUE);
    let (finish_tx, finish_rx) = oneshot::channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    let opened = Input::Opened {
        writer: LinkWriter {
            frames: frames_tx,
            finish: finish_tx,
        },
        reply: reply_tx,
    };
    if ctx.actor.send(opened).await.is_err() {
        return;
    }
    let Ok(link) = reply_rx.await else {
        return;
    };
    debug!(%link, %peer, "link opened");
    let (sink, stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, frames_rx, finish_rx, ctx.notify.clone()));
    tokio::select! {
        () = read_loop(stream, link, &ctx.actor) => {}
        _ = &mut writer => {}
    }
    writer.abort();
    debug!(%link, "link closed");
    let _ = ctx.actor.send(Input::Closed(link)).await;
}

async fn read_loop(mut stream: SplitStream<Ws>, link: LinkId, actor: &mpsc::Sender<Input>) {
    while let Some(message) = stream.next().await {
        let input = match message {
            Ok(Message::Binary(bytes)) => Input::Frame(link, bytes),
            Ok(Message::Text(_)) => Input::Text(link),
            Ok(Message::Close(_)) => return,
            // WebSocket ping and pong carry no meaning for the relay link (spec/03 3.1);
            // tungstenite answers pings itself.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(WsError::Capacity(e)) => {
                debug!(%link, "refused oversize message: {e}");
                let _ = actor.send(Input::Oversize(link)).await;
                // The stream is mid-message and unusable; the writer sends GOAWAY and ends
                // the connection.
                std::future::pending::<()>().await;
                return;
            }
            Err(e) => {
                debug!(%link, "read failed: {e}");
                return;
            }
        };
        if actor.send(input).await.is_err() {
            return;
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut frames: mpsc::Receiver<Vec<u8>>,
    mut finish_rx: oneshot::Receiver<Finish>,
    notify: Arc<Notify>,
) {
    let (finish, deadline) = loop {
        let bytes = tokio::select! {
            biased;
            finish = &mut finish_rx => match finish {
                Ok(f) => {
                    let deadline = Instant::now() + f.timeout;
                    break (f, deadline);
                }
                Err(_) => return,
            },
            bytes = frames.recv() => match bytes {
                Some(b) => b,
                None => return,
            },
        };
        // Every frame already queued goes out with this one, in one flush.
        let mut send = pin!(async {
            sink.feed(Message::Binary(bytes.into())).await?;
            while let Ok(more) = frames.try_recv() {
                sink.feed(Message::Binary(more.into())).await?;
            }
            sink.flush().await
        });
        tokio::select! {
            sent = &mut send => {
                if sent.is_err() {
                    return;
                }
                // The writer has room again: let the actor pull more (LINK-23).
                notify.notify_one();
            }
            finish = &mut finish_rx => {
                let Ok(f) = finish else { return };
                let deadline = Instant::now() + f.timeout;
                // A frame cannot be abandoned half-written: complete it within the bound,
                // or drop the connection.
                if f.discard_queued || !matches!(timeout_at(deadline, send).await, Ok(Ok(()))) {
                    return;
                }
                break (f, deadline);
            }
        }
    };
    let flush = async {
        if !finish.discard_queued {
            while let Ok(bytes) = frames.try_recv() {
                sink.feed(Message::Binary(bytes.into())).await?;
            }
            for bytes in finish.frames {
                sink.feed(Message::Binary(bytes.into())).await?;
            }
        }
        // LINK-27: close after the GOAWAY; the WebSocket status carries no meaning, 1000.
        sink.send(Message::Close(Some(CloseFrame {
            code: WsCloseCode::Normal,
            reason: "".into(),
        })))
        .await
    };
    let _ = timeout_at(deadline, flush).await;
}
