//! `--capture --fifo`: the extcap's capture is `kubectl bpc capture -w FIFO`
//! (the same pre-flight, ephemeral containers and merge, see
//! [`crate::capture`]), quiet but for the one line of a failure.
//!
//! Wireshark stops an extcap with SIGTERM and closes the pipe: either makes
//! the capture send each agent its stop byte, so the agents flush and exit 0.

use std::process::ExitCode;

use super::protocol::{CaptureRequest, Pick};
use crate::Error;
use crate::capture::{self, CaptureArgs};
use crate::kube_context::Kube;

/// The `kubectl bpc capture` flags a request stands for.
pub fn capture_args(req: &CaptureRequest) -> CaptureArgs {
    let (targets, selector) = match &req.pick {
        Pick::Target(t) => (vec![t.clone()], None),
        Pick::Selector(s) => (Vec::new(), Some(s.clone())),
    };
    CaptureArgs {
        targets,
        selector,
        filter: req.filter.clone(),
        duration: req.duration,
        write: Some(req.fifo.clone()),
        image: req.image.clone(),
        quiet: true,
        ..CaptureArgs::default()
    }
}

/// Runs the capture into the request's fifo.
pub async fn run(req: &CaptureRequest, kube: &Kube) -> Result<ExitCode, Error> {
    capture::run(&capture_args(req), kube).await
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
        let a = capture_args(&req);
        assert_eq!((a.targets.len(), a.selector.as_deref()), (0, Some("app=web")));
        assert_eq!(a.write.as_deref(), Some(std::path::Path::new("/tmp/wireshark_extcap_bpc_1")));
        assert!(a.quiet && a.duration.is_zero() && a.collectors.is_empty());
        a.check().unwrap();
    }
}
