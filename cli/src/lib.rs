//! kubectl-bpc: the kubectl plugin.
//!
//! Placeholder crate root until the CLI skeleton lands: it declares the
//! status/verify/sink/map modules and a minimal crate [`Error`].

pub mod map;
pub mod pod_proxy;
pub mod sink;
pub mod status;
pub mod verify;

/// Errors of the kubectl-bpc library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API server failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The command line or the named objects cannot be used as given.
    #[error("{0}")]
    Usage(String),
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
