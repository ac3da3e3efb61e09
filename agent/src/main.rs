//! `bpc-agent` binary: parse flags, run, map errors to exit codes.

use std::io::Write;
use std::process::ExitCode;

use bpc_agent::config::{Args, Config};
use clap::Parser;

/// Where Kubernetes reads the container's termination message.
const TERMINATION_LOG: &str = "/dev/termination-log";
/// `--check-health` gives up after this: below the 2 s `timeoutSeconds` that
/// attach sets on the exec probe, so the probe reports our reason, not a kill.
const HEALTH_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

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
        say(&bpc_agent::iface::listing());
        return ExitCode::SUCCESS;
    }
    if args.check_health {
        return check_health(&args, "/livez");
    }
    if args.check_startup {
        return check_health(&args, "/startupz");
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned());
    match Config::from_args(args, hostname).and_then(bpc_agent::agent::run) {
        Ok(summary) => {
            write_termination_log(&summary);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            write_termination_log(&e.to_string());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `--check-health` (`/livez`) and `--check-startup` (`/startupz`): 0 when
/// the agent's own endpoint says 200 at `path`, 1 otherwise (2 for an
/// unusable --metrics-addr), with the verdict on stdout, where the kubelet
/// records an exec probe's output.
fn check_health(args: &Args, path: &str) -> ExitCode {
    let addr = bpc_agent::config::parse_metrics_addr(&args.metrics_addr)
        .and_then(|a| if args.metrics_private { bpc_agent::config::private_metrics_addr(a) } else { Ok(a) });
    let addr = match addr {
        Ok(a) => bpc_agent::http::probe_address(a),
        Err(e) => {
            say(&format!("bpc-agent --check-health: {e}\n"));
            return ExitCode::from(2);
        }
    };
    match bpc_agent::http::check_health(addr, path, HEALTH_CHECK_TIMEOUT) {
        Ok(body) => {
            say(&format!("healthy: {body}\n"));
            ExitCode::SUCCESS
        }
        Err(why) => {
            say(&format!("unhealthy: {why}\n"));
            ExitCode::from(1)
        }
    }
}

/// Writes the fatal message, or the final tally of a clean stop, where
/// `kubectl describe pod` and `kubectl bpc status --captures` show it
/// (state.terminated.message), if that file exists and is writable.
fn write_termination_log(message: &str) {
    let path = std::env::var("BPC_TERMINATION_LOG").unwrap_or_else(|_| TERMINATION_LOG.to_owned());
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(path)
        && let Err(e) = writeln!(f, "bpc-agent: {message}")
    {
        tracing::warn!("could not write the termination log: {e}");
    }
}

/// Writes to stdout; a reader that went away (`| head`) is no failure, as
/// for the other commands of the project, and never a panic, as `print!` is.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        tracing::warn!("could not write to stdout: {e}");
    }
}
