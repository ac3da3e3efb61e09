//! Per-stream accounting: each decapsulated packet counted on its stream
//! (key, source, profile) with its sequence number and direction, each
//! datagram that is not one counted by reason, and the inner frame handed
//! on (flows, the frame sink).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use bpc_wire::{Decapsulated, Direction, SequenceTracker, WireError, ethernet};

use bpc_contract::stream::{DirectionCounts, ReceivedProfile};

use super::inner::InnerFrames;
use crate::Error;

/// Something that wants the inner frames (the pcap writer).
pub trait FrameSink: Send {
    /// One inner Ethernet frame, received at `ts`, from stream `key`. After
    /// an error the sink gets no more frames ([`super::Receiver::take_sink_error`]).
    fn frame(&mut self, ts: SystemTime, key: u32, frame: &[u8]) -> Result<(), Error>;
}

/// One stream: a key from one source in one profile.
#[derive(Debug)]
pub(super) struct Stream {
    /// The header layout it arrives in.
    pub profile: ReceivedProfile,
    /// Loss, reordering, duplicates and restarts from its sequence numbers.
    pub tracker: SequenceTracker,
    /// Valid packets.
    pub packets: u64,
    /// Inner frame bytes.
    pub bytes: u64,
    /// Receive time of its first packet.
    pub first: SystemTime,
    /// Receive time of its last packet.
    pub last: SystemTime,
    /// Packets per direction, for the profiles that carry it (netis, ERSPAN III).
    pub dirs: Option<DirectionCounts>,
}

/// Everything a receiver has counted, behind the one lock the receiving
/// threads and the readers of reports share.
pub(super) struct State {
    /// Streams by key, source and profile.
    pub streams: HashMap<(u32, IpAddr, ReceivedProfile), Stream>,
    /// Datagrams that are no valid packet, by reason.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Flows, latency samples and path records of the inner frames.
    pub inner: InnerFrames,
    /// Valid packets over all streams.
    pub valid: u64,
    /// The frame sink's first error; it is called no more after one.
    pub sink_error: Option<Error>,
    /// The frame sink failed: it gets no more frames.
    pub sink_failed: bool,
    /// Why the VXLAN socket is not listening, for the report.
    pub vxlan_note: Option<String>,
}

impl State {
    /// Nothing counted yet; inner frames feed a path table when `paths`,
    /// and the report says `vxlan_note`.
    pub(super) fn new(paths: bool, vxlan_note: Option<String>) -> State {
        State {
            streams: HashMap::new(),
            malformed: BTreeMap::new(),
            inner: InnerFrames::new(paths),
            valid: 0,
            sink_error: None,
            sink_failed: false,
            vxlan_note,
        }
    }
}

/// Counts one datagram that is no valid packet, by `reason`.
pub(super) fn bump(st: &mut State, reason: &'static str) {
    *st.malformed.entry(reason).or_insert(0) += 1;
}

/// Counts one decoded datagram from `src` on its stream, then hands its
/// inner frame to flow inspection and to the frame sink.
pub(super) fn handle(
    st: &mut State,
    src: IpAddr,
    decoded: Result<Decapsulated<'_>, WireError>,
    now: SystemTime,
    sink: Option<&Mutex<dyn FrameSink>>,
) {
    let packet = match decoded {
        Ok(p) => p,
        Err(e) => {
            bump(
                st,
                match e {
                    WireError::Truncated { .. } => "truncated",
                    WireError::TruncatedHeader { .. } => "truncated",
                    WireError::UnsupportedVersion(_) => "unsupported_version",
                    WireError::ErspanVersion { .. } => "unsupported_version",
                    WireError::ReservedBitsSet(_) => "reserved_bits",
                    WireError::ChecksumMismatch { .. } => "checksum",
                    WireError::NotEthernet(_) => "not_ethernet",
                    WireError::VxlanNoVni(_) => "vxlan_flags",
                    _ => "other",
                },
            );
            return;
        }
    };
    // Not even an Ethernet header: nothing to count a stream's frame by.
    if packet.frame.len() < ethernet::HEADER_LEN {
        bump(st, "short_frame");
        return;
    }
    let frame = packet.frame;
    let profile = ReceivedProfile::from(packet.kind);
    let key = packet.id;
    let directed = matches!(profile, ReceivedProfile::Netis | ReceivedProfile::ErspanIii);
    let s = st.streams.entry((key, src, profile)).or_insert_with(|| Stream {
        profile,
        tracker: SequenceTracker::new(),
        packets: 0,
        bytes: 0,
        first: now,
        last: now,
        dirs: directed.then(DirectionCounts::default),
    });
    s.packets += 1;
    s.bytes += frame.len() as u64;
    st.valid += 1;
    s.last = now;
    if let Some(seq) = packet.sequence {
        s.tracker.observe(seq);
    }
    if let Some(c) = s.dirs.as_mut() {
        match packet.direction {
            Direction::Inbound => c.inbound += 1,
            Direction::Outbound => c.outbound += 1,
            Direction::Unknown => c.unknown += 1,
        }
    }
    st.inner.observe(src, frame, now, packet.captured);
    if let Some(sink) = sink
        && !st.sink_failed
        && let Err(e) = sink.lock().unwrap().frame(now, key, frame)
    {
        st.sink_failed = true;
        st.sink_error = Some(e);
    }
}
