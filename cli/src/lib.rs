//! kubectl-bpc: the kubectl plugin that attaches the `bpc-agent` capture
//! sidecar to workloads and checks that their traffic reaches the collector.
//!
//! `main.rs` only parses the command line; each command lives in a module
//! of its own: [`attach`] (attach and detach), [`inject`] (offline inject
//! and uninject, editing manifests with [`manifest`]), [`capture`] (ephemeral capture now), [`extcap`] (the Wireshark extcap), [`status`], [`verify`], [`sink`], [`map`]. The sidecar
//! itself is built in one place, [`sidecar`].

pub mod attach;
pub mod capabilities;
pub mod capture;
pub mod extcap;
pub mod inject;
pub mod kube_context;
pub mod manifest;
pub mod map;
pub mod merge;
pub mod output;
pub mod pod_proxy;
pub mod pod_spec;
pub mod preflight;
pub mod rollout;
pub mod sidecar;
pub mod sink;
pub mod status;
pub mod verify;
pub mod workload;

use std::process::ExitCode;

/// Errors of the kubectl-bpc library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API server failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The command line or the named objects cannot be used as given.
    #[error("{0}")]
    Usage(String),
    /// The kubeconfig or the cluster connection cannot be set up.
    #[error("{0}")]
    Config(String),
    /// One workload could not be changed, or was left changed; the message
    /// names it and what to do.
    #[error("{0}")]
    Workload(String),
    /// The user stopped the command (Ctrl-C) before it had its answer.
    #[error("{0}")]
    Interrupted(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding JSON (output, an annotation) failed, or writing it.
    #[error("cannot encode output: {0}")]
    Json(#[from] serde_json::Error),
    /// Encoding YAML failed.
    #[error("cannot encode output: {0}")]
    Yaml(#[from] yaml_serde::Error),
    /// Writing pcapng failed.
    #[error("cannot write pcapng: {0}")]
    Pcap(#[from] pcap_file::PcapError),
    /// The embedded receiver failed.
    #[error("receiver: {0}")]
    Receiver(String),
}

/// Exit code: some workloads failed (the others were processed), a check is
/// not OK, or a workload was left changed.
pub const EXIT_WORKLOAD_FAILED: u8 = 1;
/// Exit code: usage, configuration or API error before any work was done.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

impl Error {
    /// The exit code this error ends the command with: 0 for a closed
    /// output pipe, 2 for usage, configuration and API errors, 130 when
    /// interrupted, 1 for a failed workload, output or receiver.
    pub fn exit_code(&self) -> ExitCode {
        if self.is_closed_pipe() {
            return ExitCode::SUCCESS;
        }
        ExitCode::from(match self {
            Error::Usage(_) | Error::Config(_) | Error::Kube(_) => EXIT_USAGE,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
            _ => EXIT_WORKLOAD_FAILED,
        })
    }

    /// Whether standard output was closed by its reader (`| head`): not a
    /// failure, the command ends quietly (see [`output`]).
    pub fn is_closed_pipe(&self) -> bool {
        let kind = match self {
            Error::Io(e) => Some(e.kind()),
            Error::Json(e) => e.io_error_kind(),
            Error::Pcap(pcap_file::PcapError::IoError(e)) => Some(e.kind()),
            _ => None,
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_exits_0_an_interrupt_130_a_usage_error_2_and_a_left_changed_workload_1() {
        let closed = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let code = |e: Error| format!("{:?}", e.exit_code());
        assert!(Error::Io(closed()).is_closed_pipe());
        assert!(Error::Json(serde_json::Error::io(closed())).is_closed_pipe());
        assert!(!Error::Io(std::io::Error::other("disk full")).is_closed_pipe());
        assert_eq!(code(Error::Io(closed())), format!("{:?}", ExitCode::SUCCESS));
        assert_eq!(code(Error::Interrupted("interrupted".into())), format!("{:?}", ExitCode::from(130)));
        assert_eq!(code(Error::Usage("bad flag".into())), format!("{:?}", ExitCode::from(2)));
        assert_eq!(code(Error::Workload("not restored".into())), format!("{:?}", ExitCode::from(1)));
        assert_eq!(code(Error::Io(std::io::Error::other("disk full"))), format!("{:?}", ExitCode::from(1)));
    }
}
