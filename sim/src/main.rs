//! bpc-sim: GRE receiver simulator and replay tool.

use std::process::ExitCode;

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
    Receive(bpc_sim::receive::ReceiveArgs),
    /// Apply --expect assertions to a report saved with `receive -o json`.
    Check(bpc_sim::check::CheckArgs),
    /// Send a pcap (or synthetic frames) GRE-encapsulated like an agent.
    Replay(bpc_sim::replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Receive(a) => bpc_sim::receive::run_receive(&a),
        Command::Check(a) => bpc_sim::check::run_check(&a),
        Command::Replay(a) => bpc_sim::replay::run_replay(&a).map(|s| {
            let secs = s.elapsed.as_secs_f64().max(1e-9);
            println!(
                "sent {} packets in {:.3}s ({:.0} pps), {} errors",
                s.sent,
                secs,
                s.sent as f64 / secs,
                s.errors
            );
            ExitCode::SUCCESS
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
