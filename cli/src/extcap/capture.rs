//! `--capture --fifo`: the extcap's capture is `kubectl bpc capture -w FIFO`
//! (the same pre-flight, ephemeral containers and merge, see
//! [`crate::capture`]), quiet but for the one line of a failure; the
//! request carries it checked ([`CaptureRequest`]).
//!
//! Wireshark stops an extcap with SIGTERM and closes the pipe: either makes
//! the capture send each agent its stop byte, so the agents flush and exit 0.

use std::process::ExitCode;

use super::protocol::CaptureRequest;
use crate::Error;
use crate::capture;
use crate::kube_context::Kube;

/// Runs the capture into the request's fifo.
pub async fn run(req: &CaptureRequest, kube: &Kube) -> Result<ExitCode, Error> {
    capture::run(&req.capture, kube).await
}
