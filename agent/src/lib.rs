//! bpc-agent: the capture sidecar.
