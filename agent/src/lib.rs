//! bpc-agent: the capture sidecar.
pub mod segment;
