//! bpc-sim: GRE receiver simulator and replay tool.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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
    Receive(bpc_sim::receive_cmd::ReceiveArgs),
    /// Apply --expect assertions to a report saved with `receive -o json`.
    Check(bpc_sim::check_cmd::CheckArgs),
    /// Send a pcap (or synthetic frames) GRE-encapsulated like an agent.
    Replay(bpc_sim::replay::ReplayArgs),
}

/// Set by SIGINT: `receive` stops and reports.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn receive(args: &bpc_sim::receive_cmd::ReceiveArgs) -> Result<ExitCode, bpc_sim::Error> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let mut shown = bpc_sim::receive_cmd::StderrProgress::new(args.quiet);
    let received = bpc_sim::receive_cmd::run_receive(args, &INTERRUPTED, &mut |p| shown.show(p))?;
    drop(shown);
    received.print(&mut std::io::stdout().lock(), &mut std::io::stderr())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Receive(a) => receive(&a),
        Command::Check(a) => bpc_sim::check_cmd::run_check(&a, &mut std::io::stdout().lock()),
        Command::Replay(a) => bpc_sim::replay::run_replay(&a).and_then(|s| {
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
                    Err(bpc_sim::Error::File { path: "stdout".into(), source: e })
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
