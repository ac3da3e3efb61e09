//! `bpc-agent` binary: parse flags, run, map errors to exit codes.

use std::io::Write;
use std::process::ExitCode;

use bpc_agent::config::{Args, Config};
use clap::Parser;

/// Where Kubernetes reads the container's termination message.
const TERMINATION_LOG: &str = "/dev/termination-log";

fn main() -> ExitCode {
    // clap exits 2 on usage errors, like every other configuration error.
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.list_interfaces {
        print!("{}", bpc_agent::iface::listing());
        return ExitCode::SUCCESS;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned());
    match Config::from_args(args, hostname).and_then(bpc_agent::agent::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            write_termination_log(&e.to_string());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Writes the fatal message where `kubectl describe pod` shows it
/// (lastState.terminated.message), if that file exists and is writable.
fn write_termination_log(message: &str) {
    let path = std::env::var("BPC_TERMINATION_LOG").unwrap_or_else(|_| TERMINATION_LOG.to_owned());
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(path) {
        let _ = writeln!(f, "bpc-agent: {message}");
    }
}
