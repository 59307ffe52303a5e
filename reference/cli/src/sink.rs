//! Where `tether exec` puts a remote command's output: this process's stdout and stderr,
//! written by a thread of its own.
//!
//! The runtime's thread never blocks in a write: a terminal that scrolls slowly or a pipe
//! nobody reads fills the thread's bounded queue, the next chunk is then not taken from the
//! session, and the host is held back through the session's window (`CHAN-36`), while the
//! link keeps its keepalive going. The thread takes chunks as they come and flushes stdout
//! only when its queue is empty, so a fast reader costs one wake per burst rather than one
//! per chunk.

use std::io::{self, Write};

use tether_proto::cmd::types::OutputStream;
use tokio::sync::{mpsc, oneshot};

/// Chunks queued for the writer thread at most (records carry at most 64 KiB each, so
/// at most 1 MiB waits here).
const QUEUE_CHUNKS: usize = 16;

/// Writes a command's output to stdout and stderr, in the order it arrives (`CMD-35`).
#[derive(Default)]
pub(crate) struct StdioSink {
    writer: Option<Writer>,
}

struct Writer {
    chunks: mpsc::Sender<(OutputStream, Vec<u8>)>,
    done: oneshot::Receiver<io::Result<()>>,
}

impl Writer {
    fn start() -> io::Result<Self> {
        let (chunks, rx) = mpsc::channel(QUEUE_CHUNKS);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("tether-output".to_owned())
            .spawn(move || {
                let _ = done_tx.send(write_all(rx));
            })?;
        Ok(Self { chunks, done })
    }

    /// Waits for the thread to write what it holds; its first error.
    async fn finish(self) -> io::Result<()> {
        drop(self.chunks);
        self.done
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the output thread ended early")))
    }
}

/// The writer thread: every chunk in order, each written whole before the next (so
/// stdout and stderr keep their relative order on a shared terminal). The stderr lock is
/// taken per write: other threads may print meanwhile.
///
/// Stdout is written through a duplicate of its descriptor: the standard library's
/// stdout is line-buffered, which scans every chunk for newlines and copies what follows
/// the last one, work that binary output does not need. What was printed to the
/// standard library's stdout before is flushed first, so nothing overtakes it.
fn write_all(mut rx: mpsc::Receiver<(OutputStream, Vec<u8>)>) -> io::Result<()> {
    use std::os::fd::AsFd;
    io::stdout().lock().flush()?;
    let mut out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let stderr = io::stderr();
    while let Some((stream, bytes)) = rx.blocking_recv() {
        match stream {
            OutputStream::Stdout => out.write_all(&bytes)?,
            OutputStream::Stderr => stderr.lock().write_all(&bytes)?,
        }
    }
    Ok(())
}

impl tether_controller::OutputSink for StdioSink {
    async fn write(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(Writer::start()?),
        };
        if writer.chunks.send((stream, bytes.to_vec())).await.is_ok() {
            return Ok(());
        }
        // The thread stopped at a failed write: that error is the answer.
        match self.writer.take() {
            Some(w) => match w.finish().await {
                Ok(()) => Err(io::Error::other("the output thread ended early")),
                Err(e) => Err(e),
            },
            None => Err(io::Error::other("the output thread ended early")),
        }
    }

    async fn finish(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => w.finish().await,
            None => Ok(()),
        }
    }
}
