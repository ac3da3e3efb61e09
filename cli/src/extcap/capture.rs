//! `--capture --fifo`: the extcap's capture is `kubectl bpc capture -w FIFO`
//! (the same pre-flight, ephemeral containers and merge, see
//! [`crate::capture`]), quiet but for the one line of a failure.
//!
//! Wireshark stops an extcap with SIGTERM and closes the pipe: either makes
//! the capture send each agent its stop byte, so the agents flush and exit 0.

use std::process::ExitCode;

use super::protocol::{CaptureRequest, Pick};
use crate::Error;
use crate::capabilities::CapabilitiesArg;
use crate::capture::{self, Capture, Selection, Target};
use crate::kube_context::Kube;
use crate::sidecar::SidecarOptions;

/// The capture a request stands for: `kubectl bpc capture PICK -w FIFO`.
pub fn capture_of(req: &CaptureRequest) -> Result<Capture, Error> {
    let pods = match &req.pick {
        Pick::Target(t) => Selection::Targets(vec![Target::parse(t)?]),
        Pick::Selector(s) => Selection::Selector(s.clone()),
    };
    if let Some(f) = &req.filter {
        crate::preflight::compile_filter(f)?;
    }
    let agent = SidecarOptions {
        filter: req.filter.clone(),
        image: req.image.clone(),
        ..SidecarOptions::with_collectors(&[])
    };
    Ok(Capture {
        pods,
        agent,
        pcapng: Some(req.fifo.clone()),
        duration: req.duration,
        count: None,
        capabilities: CapabilitiesArg::Auto,
        id: None,
        quiet: true,
    })
}

/// Runs the capture into the request's fifo.
pub async fn run(req: &CaptureRequest, kube: &Kube) -> Result<ExitCode, Error> {
    capture::run(&capture_of(req)?, kube).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_is_the_capture_of_its_target_into_the_fifo_quietly_until_stopped() {
        let req = CaptureRequest {
            cluster: Default::default(),
            pick: Pick::Selector("app=web".into()),
            filter: Some("tcp port 80".into()),
            duration: Duration::ZERO,
            image: Some("bpc-agent:test".into()),
            fifo: "/tmp/wireshark_extcap_bpc_1".into(),
        };
        let c = capture_of(&req).unwrap();
        assert_eq!(c.pods, Selection::Selector("app=web".into()));
        assert_eq!(c.pcapng.as_deref(), Some(std::path::Path::new("/tmp/wireshark_extcap_bpc_1")));
        assert!(c.quiet && c.duration.is_zero() && c.agent.collectors.is_empty());
        assert_eq!(
            (c.agent.filter.as_deref(), c.agent.image.as_deref()),
            (Some("tcp port 80"), Some("bpc-agent:test"))
        );
    }
}
