//! A plain TCP forwarder in its own process, the baseline of `e2e/exec-cpu-baseline` and
//! `e2e/relay-cpu-baseline` (`BENCHMARKS.md`): what moving the bytes of a stream through a
//! middle process costs with no framing, no encryption and no flow control.
//!
//! ```text
//! tcp-forwarder TARGET
//! ```
//!
//! Listens on 127.0.0.1 (a free port), prints `LISTEN ADDR`, and joins every accepted
//! connection to a new connection to `TARGET` with tokio's `copy_bidirectional` (64 KiB
//! buffers, the size of the relay's largest frame), in a multi-threaded runtime with one
//! worker per core, as `tether relay` runs. It ends when its stdin closes.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// The buffer of each direction.
const BUFFER: usize = 64 * 1024;

async fn serve(target: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    println!("LISTEN {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let accept = async {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let _ = inbound.set_nodelay(true);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut inbound,
                        &mut outbound,
                        BUFFER,
                        BUFFER,
                    )
                    .await;
                }
            });
        }
    };
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    tokio::select! {
        () = accept => {}
        _ = stdin_closed => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let run = || -> Result<()> {
        let target: SocketAddr = std::env::args()
            .nth(1)
            .context("usage: tcp-forwarder TARGET (HOST:PORT)")?
            .parse()
            .context("TARGET must be HOST:PORT")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(serve(target));
        // The thread reading stdin may still be blocked in its read.
        rt.shutdown_background();
        result
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp-forwarder: {e:#}");
            ExitCode::FAILURE
        }
    }
}
