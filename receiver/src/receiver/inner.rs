//! Inner-frame inspection: the flow a decapsulated frame belongs to (top
//! flows, path discovery) and the send time of a synthetic frame (latency).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bpc_wire::{InnerFlow, Ports, Transport};

use crate::paths::{Clock, FlowTable, Stamp, TcpFlags};

/// Latency samples kept (8 MiB); later synthetic frames are not sampled.
const MAX_LATENCY_SAMPLES: usize = 1 << 20;

/// An inner flow: IP protocol, source address and port, destination address and port.
pub(super) type FlowKey = (u8, IpAddr, u16, IpAddr, u16);

/// What the inner frames have told so far.
#[derive(Default)]
pub(super) struct InnerFrames {
    /// Packets and bytes per inner flow (the report's top flows).
    pub flows: HashMap<FlowKey, (u64, u64)>,
    /// One-way latencies of synthetic frames, nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// The path discovery's flow records, when asked for.
    pub paths: Option<FlowTable>,
}

impl InnerFrames {
    /// Ready for frames; with a path table when `paths`.
    pub(super) fn new(paths: bool) -> InnerFrames {
        InnerFrames {
            flows: HashMap::new(),
            latencies_ns: Vec::with_capacity(MAX_LATENCY_SAMPLES),
            paths: paths.then(FlowTable::default),
        }
    }

    /// Counts `frame`, captured by `observer`, on its inner flow (and in the
    /// path table, timed by `captured` where the format carries the capture
    /// time, else by its arrival `now`), and takes a latency sample from a
    /// synthetic frame.
    /// Headers are read through [`InnerFlow`]; a frame that is no flow
    /// counts on its stream only.
    pub(super) fn observe(
        &mut self,
        observer: IpAddr,
        frame: &[u8],
        now: SystemTime,
        captured: Option<Duration>,
    ) {
        let Some(flow) = InnerFlow::parse(frame) else { return };
        let Ports { source: sp, destination: dp } = flow.ports();
        let (s, d, proto) = (flow.source, flow.destination, flow.protocol);
        let flags = match flow.transport {
            Transport::Tcp(t) => Some(TcpFlags { syn: t.syn(), ack: t.ack(), rst: t.rst() }),
            Transport::Udp(u) => {
                if let Some(sent) = latency_marker(u.payload)
                    && self.latencies_ns.len() < MAX_LATENCY_SAMPLES
                {
                    self.latencies_ns.push(unix_ns(now).saturating_sub(sent));
                }
                None
            }
            Transport::Portless => None,
        };
        let e = self.flows.entry((proto, s, sp, d, dp)).or_insert((0, 0));
        e.0 += 1;
        e.1 += frame.len() as u64;
        if let Some(paths) = self.paths.as_mut() {
            let at = match captured {
                Some(c) => Stamp { ns: c.as_nanos() as u64, clock: Clock::Capture },
                None => Stamp::from(unix_ns(now)),
            };
            paths.observe(observer, proto, (s, sp), (d, dp), flags, frame.len(), at);
        }
    }
}

/// The send time (ns since the Unix epoch) of a synthetic UDP payload:
/// [`crate::LATENCY_MARKER`], then the time as u64 big-endian.
fn latency_marker(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(crate::LATENCY_MARKER)?;
    Some(u64::from_be_bytes(*rest.first_chunk::<8>()?))
}

pub(super) fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_marker_is_read_only_when_whole() {
        let mut payload = b"BPCT".to_vec();
        payload.extend(1_700_000_000_123_456_789u64.to_be_bytes());
        assert_eq!(latency_marker(&payload), Some(1_700_000_000_123_456_789));
        payload.extend(b" and a counter");
        assert_eq!(latency_marker(&payload), Some(1_700_000_000_123_456_789));
        assert_eq!(latency_marker(&payload[..11]), None);
        assert_eq!(latency_marker(b"XPCT\0\0\0\0\0\0\0\x01"), None);
    }
}
