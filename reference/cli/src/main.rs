//! `tether`: the one command-line tool of the Tether reference implementation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod conformance;
mod connect;
mod controller;
mod host;
mod loadtest;
mod relay;
mod sandbox;
mod sink;
mod threads;
mod vectors;

/// Tether: drive a coding-agent host from another device, end-to-end encrypted through a
/// relay that sees only ciphertext.
#[derive(Parser)]
#[command(name = "tether", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a relay: the untrusted forwarder hosts and controllers connect out to.
    Relay(relay::RelayArgs),
    /// Run a host, mint pairing tokens, list and revoke paired devices.
    Host {
        #[command(subcommand)]
        command: host::HostCommand,
    },
    /// Pair this controller with a host, using the token from the host's QR code.
    Pair(controller::PairArgs),
    /// Run a command on a paired host and stream its output.
    Exec(controller::ExecArgs),
    /// Show paired hosts and whether each is reachable.
    Status(controller::StatusArgs),
    /// Start, list, show and hand off threads on a paired host.
    Thread {
        #[command(subcommand)]
        command: threads::ThreadCommand,
    },
    /// Run one turn on a thread: stream its output live and answer its approvals.
    #[command(after_help = threads::TURN_EXIT_HELP)]
    Turn(threads::TurnArgs),
    /// Run a program under a kernel sandbox (used by the host for every `read-only` and `workspace-write` command it runs).
    #[command(hide = true)]
    SandboxExec(sandbox::SandboxExecArgs),
    /// Bridge local Codex app-server clients to a paired host: a loopback WebSocket
    /// server, one session to the host per connection.
    #[command(after_help = connect::CONNECT_HELP)]
    Connect(connect::ConnectArgs),
    /// Run the conformance suite against a relay or a host (with no target, the reference relay and host).
    Conformance(conformance::ConformanceArgs),
    /// Drive N sessions through a relay for a while, check every byte end to end and
    /// report what was lost, corrupted or misrouted and the relay's peak memory.
    Loadtest(loadtest::LoadtestArgs),
    /// Generate or verify the protocol test vectors in `vectors/`.
    Vectors {
        #[command(subcommand)]
        action: VectorsAction,
    },
}

#[derive(Subcommand)]
enum VectorsAction {
    /// Check every committed vector file byte for byte against the generator, and run
    /// every case through the protocol core. Exits 1 if any file fails.
    Verify {
        /// Directory holding the vector files.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
    /// Regenerate every vector file. The vectors are frozen: regenerate only with a
    /// protocol change, and commit the spec, code and vectors together.
    Generate {
        /// Directory to write the vector files into.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Relay(args) => relay::run(args),
        Command::Host { command } => host::run(command),
        Command::Pair(args) => controller::pair(args),
        Command::Exec(args) => controller::exec(args),
        Command::Status(args) => controller::status(args),
        Command::Thread { command } => threads::run_thread(command),
        Command::Turn(args) => threads::turn(args),
        Command::Connect(args) => connect::run(args),
        Command::SandboxExec(args) => sandbox::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Vectors { action } => match action {
            VectorsAction::Verify { dir } => vectors::verify(&dir),
            VectorsAction::Generate { dir } => vectors::generate(&dir),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tether: {e:#}");
            ExitCode::from(2)
        }
    }
}
