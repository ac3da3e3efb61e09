//! kubectl-bpc: the kubectl plugin that attaches the `bpc-agent` capture
//! sidecar to workloads and checks that their traffic reaches the collector.
//!
//! `main.rs` only parses the command line; each command lives in a module
//! of its own: [`attach`] (attach and detach), [`manifest`] (offline inject
//! and uninject), [`capture`] (ephemeral capture now), [`status`], [`verify`], [`sink`], [`map`]. The sidecar
//! itself is built in one place, [`sidecar`].

pub mod attach;
pub mod capabilities;
pub mod capture;
pub mod kube_context;
pub mod manifest;
pub mod map;
pub mod merge;
pub mod output;
pub mod pod_proxy;
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
    /// One workload could not be changed; the message names it and what to do.
    #[error("{0}")]
    Workload(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding the output failed.
    #[error("cannot encode output: {0}")]
    Encode(String),
    /// The embedded receiver failed.
    #[error("receiver: {0}")]
    Receiver(String),
}

/// Exit code: some workloads failed, the others were processed.
pub const EXIT_WORKLOAD_FAILED: u8 = 1;
/// Exit code: usage, configuration or API error before any work was done.
pub const EXIT_USAGE: u8 = 2;

impl Error {
    /// The exit code this error ends the command with: 2 for usage,
    /// configuration and API errors, 1 for a failed workload or output.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) | Error::Config(_) | Error::Kube(_) => EXIT_USAGE,
            _ => EXIT_WORKLOAD_FAILED,
        })
    }
}
