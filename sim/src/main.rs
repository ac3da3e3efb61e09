//! bpc-sim: the receiver as a command (`receive`, the `bpc_receiver`
//! library behind `kubectl bpc sink` too), `check` of a saved report, and
//! `replay`, which sends frames exactly as an agent would.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use bpc_sim::{Error, check_cmd, replay};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bpc-sim", version, about = "GRE receiver simulator and replay tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive GRE from agents, count per key, detect loss, write pcap.
    Receive(bpc_receiver::receive::ReceiveArgs),
    /// Apply --expect assertions to a report saved with `receive -o json`.
    Check(check_cmd::CheckArgs),
    /// Send a pcap (or synthetic frames) GRE-encapsulated like an agent.
    Replay(replay::ReplayArgs),
}

/// Set by SIGINT: `receive` stops and reports.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn receive(args: &bpc_receiver::receive::ReceiveArgs) -> Result<ExitCode, Error> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let mut shown = bpc_receiver::receive::StderrProgress::new(args.quiet);
    let received = bpc_receiver::receive::run_receive(args, &INTERRUPTED, &mut |p| shown.show(p))?;
    drop(shown);
    received.print(&mut std::io::stdout().lock(), &mut std::io::stderr())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Receive(a) => receive(&a),
        Command::Check(a) => check_cmd::run_check(&a, &mut std::io::stdout().lock()),
        Command::Replay(a) => replay::run_replay(&a).and_then(|s| {
            let secs = s.elapsed.as_secs_f64().max(1e-9);
            let line = format!(
                "sent {} packets in {:.3}s ({:.0} pps), {} errors\n",
                s.sent,
                secs,
                s.sent as f64 / secs,
                s.errors
            );
            match std::io::stdout().lock().write_all(line.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::File { path: "stdout".into(), source: e })
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }),
    };
    match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bpc-sim: {e}");
            ExitCode::from(2)
        }
    }
}
