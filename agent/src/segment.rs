//! Splitting GSO/GRO super-frames into frames the wire would carry.
//!
//! On a pod's veth, libpcap sees TCP bulk traffic *before* segmentation
//! offload (sending side) or *after* receive coalescing (receiving side), so
//! captured frames reach 64 KB. They do not fit one GRE packet on a 1500-byte
//! path. [`Segmenter`] does in user space what the NIC would have done:
//!
//! * **TCP** (IPv4 and IPv6): cut the payload into MSS-sized segments, keep
//!   every TCP option (timestamps, SACK, ...) on every segment, advance the
//!   sequence number, set FIN/PSH only on the last segment and CWR only on the
//!   first (as Linux `tcp_gso_segment` does), increment the IPv4
//!   identification per segment, fix the lengths and recompute the IPv4
//!   header and TCP checksums.
//! * **UDP and other IP protocols**: a datagram cannot be split into valid
//!   datagrams, so the IP packet is fragmented instead: IPv4 fragments (MF,
//!   offset, only "copied" options after the first fragment) or IPv6
//!   fragments with a Fragment extension header. A UDP checksum is recomputed
//!   over the whole datagram first: a captured GSO super-frame usually carries
//!   only the partial (pseudo-header) sum the kernel left for the NIC.
//! * 802.1Q / 802.1ad tags (up to two) are kept on every output frame.
//!
//! Anything else oversize (non-IP, already fragmented, truncated by the
//! snap length, inconsistent lengths) is handed back whole with
//! [`Outcome::Unsplittable`]; the caller sends it with DF clear.
//!
//! No allocation per packet: the output buffer is allocated once in
//! [`Segmenter::new`].

use bpc_wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use bpc_wire::ipv6::{self, ExtensionHeaders, FixedHeader, FragmentHeader, NEXT_FRAGMENT};
use bpc_wire::tcp::{FLAG_CWR, FLAG_FIN, FLAG_PSH, IPPROTO_TCP};
use bpc_wire::{
    EthernetFrame, Ipv4HeaderMut, Ipv4Packet, PseudoHeader, TcpSegment, TcpSegmentMut, ipv4, udp,
};

/// The most VLAN tags (802.1Q, 802.1ad) a frame may carry and still be split.
const MAX_VLAN_TAGS: usize = 2;

/// Splits oversize frames into frames that fit `max_frame` bytes (Ethernet header included).
///
/// Create one per capture loop and reuse it: the output buffer is allocated once.
#[derive(Debug)]
pub struct Segmenter {
    max_frame: usize,
    buf: Vec<u8>,
    /// Identification for the IPv6 Fragment headers this segmenter creates.
    next_ipv6_frag_id: u32,
}

/// What [`Segmenter::segment`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The frame already fitted; `emit` got it as it was (no copy).
    Unchanged,
    /// A TCP super-frame was cut into `segments` frames, each passed to `emit`.
    Segmented {
        /// Number of frames emitted.
        segments: usize,
    },
    /// A non-TCP IP packet was cut into `fragments` IP fragments, each passed to `emit`.
    Fragmented {
        /// Number of frames emitted.
        fragments: usize,
    },
    /// The frame is oversize but cannot be split (non-IP, already fragmented,
    /// truncated by the snap length, inconsistent headers, or `max_frame` too
    /// small for its headers). `emit` got it whole; send it with DF clear.
    Unsplittable,
}

#[cfg(test)]
impl Outcome {
    /// Number of frames handed to `emit`.
    pub fn frames(&self) -> usize {
        match *self {
            Outcome::Unchanged | Outcome::Unsplittable => 1,
            Outcome::Segmented { segments } => segments,
            Outcome::Fragmented { fragments } => fragments,
        }
    }
}

/// How to cut one frame; offsets are from the start of the frame.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Tcp(TcpPlan),
    Ipv4Fragments(Ipv4FragPlan),
    Ipv6Fragments(Ipv6FragPlan),
}

#[derive(Debug, Clone, Copy)]
struct TcpPlan {
    ipv6: bool,
    /// Start of the IP header.
    l3: usize,
    /// Start of the TCP header.
    l4: usize,
    /// Start of the TCP payload (end of all headers copied into every segment).
    payload: usize,
    /// End of the IP packet (any Ethernet trailer after it is dropped).
    end: usize,
    mss: usize,
    count: usize,
}

#[derive(Debug, Clone, Copy)]
struct Ipv4FragPlan {
    l3: usize,
    /// Start of the IP payload.
    payload: usize,
    end: usize,
    /// Fragment payload size, a multiple of 8.
    chunk: usize,
    count: usize,
    /// Recomputed UDP checksum to write at this frame offset of the first fragment.
    udp_checksum: Option<(usize, u16)>,
}

#[derive(Debug, Clone, Copy)]
struct Ipv6FragPlan {
    l3: usize,
    /// End of the unfragmentable part (base header + hop-by-hop/routing headers).
    unfragmentable_end: usize,
    /// Offset of the next-header byte that must now say "Fragment".
    next_header_field: usize,
    /// The value that byte had: it moves into the Fragment header.
    next_header: u8,
    end: usize,
    chunk: usize,
    count: usize,
    udp_checksum: Option<(usize, u16)>,
}

impl Segmenter {
    /// A segmenter whose output frames are at most `max_frame` bytes, Ethernet
    /// (and VLAN) headers included: 1514 for a 1500-byte MTU, or less to leave
    /// room for GRE and the outer IP header on the collector path.
    pub fn new(max_frame: usize) -> Self {
        Segmenter { max_frame, buf: vec![0; max_frame], next_ipv6_frag_id: 0x6270_0000 }
    }

    /// Calls `emit` once per output frame (borrowed from an internal buffer,
    /// valid during the call). Frames that already fit are passed to `emit`
    /// unchanged (no copy), as are oversize frames that cannot be split
    /// ([`Outcome::Unsplittable`]). Returns what was done.
    pub fn segment(&mut self, frame: &[u8], mut emit: impl FnMut(&[u8])) -> Outcome {
        if frame.len() <= self.max_frame {
            emit(frame);
            return Outcome::Unchanged;
        }
        let Some(plan) = self.plan(frame) else {
            emit(frame);
            return Outcome::Unsplittable;
        };
        match plan {
            Plan::Tcp(p) => {
                for i in 0..p.count {
                    let len = write_tcp_segment(&p, frame, i, &mut self.buf);
                    emit(&self.buf[..len]);
                }
                Outcome::Segmented { segments: p.count }
            }
            Plan::Ipv4Fragments(p) => {
                for i in 0..p.count {
                    let len = write_ipv4_fragment(&p, frame, i, &mut self.buf);
                    emit(&self.buf[..len]);
                }
                Outcome::Fragmented { fragments: p.count }
            }
            Plan::Ipv6Fragments(p) => {
                let id = self.next_ipv6_frag_id;
                self.next_ipv6_frag_id = id.wrapping_add(1);
                for i in 0..p.count {
                    let len = write_ipv6_fragment(&p, frame, i, id, &mut self.buf);
                    emit(&self.buf[..len]);
                }
                Outcome::Fragmented { fragments: p.count }
            }
        }
    }

    /// Parses an oversize frame; `None` when it cannot be split.
    fn plan(&self, frame: &[u8]) -> Option<Plan> {
        let eth = EthernetFrame::parse(frame).ok().filter(|e| e.vlan_tags <= MAX_VLAN_TAGS)?;
        match eth.ethertype {
            ETHERTYPE_IPV4 => self.plan_ipv4(frame, eth.header_len),
            ETHERTYPE_IPV6 => self.plan_ipv6(frame, eth.header_len),
            _ => None,
        }
    }

    fn plan_ipv4(&self, frame: &[u8], l3: usize) -> Option<Plan> {
        let ip = Ipv4Packet::parse(&frame[l3..]).ok()?;
        let ihl = ip.header_len;
        let total = usize::from(ip.total_len);
        // A total length shorter than the header lies; a longer one than the
        // capture means the snap length cut the packet: its payload is gone.
        if total < ihl || l3 + total > frame.len() {
            return None;
        }
        let end = l3 + total;
        if ip.fragment {
            return None; // re-fragmenting a fragment: rare, leave it whole
        }
        let l4 = l3 + ihl;
        if ip.protocol == IPPROTO_TCP {
            return self.plan_tcp(frame, false, l3, l4, end).map(Plan::Tcp);
        }
        let chunk = self.fragment_chunk(l4)?;
        let udp_checksum = if ip.protocol == ipv4::IPPROTO_UDP {
            let (source, destination) = (ip.source.octets(), ip.destination.octets());
            Some(udp_checksum(frame, l4..end, PseudoHeader::V4 { source, destination })?)
        } else {
            None
        };
        let count = (end - l4).div_ceil(chunk);
        Some(Plan::Ipv4Fragments(Ipv4FragPlan { l3, payload: l4, end, chunk, count, udp_checksum }))
    }

    fn plan_ipv6(&self, frame: &[u8], l3: usize) -> Option<Plan> {
        let ip = FixedHeader::parse(&frame[l3..]).ok()?;
        let payload_len = usize::from(ip.payload_len);
        // Payload length 0 means a jumbogram (hop-by-hop option): not handled.
        if payload_len == 0 || l3 + ipv6::HEADER_LEN + payload_len > frame.len() {
            return None;
        }
        let end = l3 + ipv6::HEADER_LEN + payload_len;
        // The upper layer, and where the unfragmentable part (RFC 8200 4.5) ends.
        let ext = ExtensionHeaders::walk(&frame[l3..end])?;
        let at = l3 + ext.upper_layer_at;
        let unfragmentable_end = l3 + ext.unfragmentable_end;
        match ext.upper_layer {
            // Already a fragment: leave it whole.
            NEXT_FRAGMENT => return None,
            IPPROTO_TCP => return self.plan_tcp(frame, true, l3, at, end).map(Plan::Tcp),
            _ => {}
        }
        let chunk = self.fragment_chunk(unfragmentable_end + ipv6::FRAGMENT_LEN)?;
        let is_udp = ext.upper_layer == ipv4::IPPROTO_UDP;
        // The UDP checksum is written into the first fragment: its header must be there.
        if is_udp && at + udp::HEADER_LEN > unfragmentable_end + chunk {
            return None;
        }
        let udp_checksum = if is_udp {
            let (source, destination) = (ip.source.octets(), ip.destination.octets());
            Some(udp_checksum(frame, at..end, PseudoHeader::V6 { source, destination })?)
        } else {
            None
        };
        let count = (end - unfragmentable_end).div_ceil(chunk);
        let next_header_field = l3 + ext.unfragmentable_next_header_at;
        Some(Plan::Ipv6Fragments(Ipv6FragPlan {
            l3,
            unfragmentable_end,
            next_header_field,
            next_header: frame[next_header_field],
            end,
            chunk,
            count,
            udp_checksum,
        }))
    }

    /// The most data bytes a fragment carries after `headers` bytes of
    /// headers: a multiple of 8 (RFC 791, RFC 8200); `None` when not one fits.
    fn fragment_chunk(&self, headers: usize) -> Option<usize> {
        let chunk = self.max_frame.checked_sub(headers)? & !7;
        (chunk > 0).then_some(chunk)
    }

    fn plan_tcp(&self, frame: &[u8], ipv6: bool, l3: usize, l4: usize, end: usize) -> Option<TcpPlan> {
        let tcp = TcpSegment::parse(&frame[l4..end]).ok()?;
        let payload = l4 + tcp.header_len;
        let mss = self.max_frame.checked_sub(payload).filter(|&m| m > 0)?;
        let count = (end - payload).div_ceil(mss).max(1);
        Some(TcpPlan { ipv6, l3, l4, payload, end, mss, count })
    }
}

/// The checksum the UDP datagram `frame[datagram]` should carry, and the
/// frame offset it goes to; `None` when its length field disagrees with the IP length.
fn udp_checksum(
    frame: &[u8],
    datagram: std::ops::Range<usize>,
    pseudo: PseudoHeader,
) -> Option<(usize, u16)> {
    let at = datagram.start + udp::CHECKSUM_AT;
    Some((at, udp::checksum(&pseudo, frame.get(datagram)?)?))
}

/// The pseudo-header of the IP packet at `l3` in `frame`: its addresses.
fn pseudo_header(frame: &[u8], l3: usize, ipv6: bool) -> PseudoHeader {
    let address = |at: usize, len: usize| &frame[l3 + at..l3 + at + len];
    if ipv6 {
        let (source, destination) = (address(8, 16), address(24, 16));
        PseudoHeader::V6 {
            source: source.try_into().expect("16 bytes"),
            destination: destination.try_into().expect("16 bytes"),
        }
    } else {
        let (source, destination) = (address(12, 4), address(16, 4));
        PseudoHeader::V4 {
            source: source.try_into().expect("4 bytes"),
            destination: destination.try_into().expect("4 bytes"),
        }
    }
}

/// The IPv4 header at `l3` of a frame being written (its IHL is there already).
fn ipv4_header(out: &mut [u8], l3: usize) -> Ipv4HeaderMut<'_> {
    Ipv4HeaderMut::new(&mut out[l3..]).expect("the plan read this header")
}

/// Writes TCP segment `i` of `p` into `out`; returns its length.
fn write_tcp_segment(p: &TcpPlan, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
    let start = p.payload + i * p.mss;
    let chunk = &frame[start..(start + p.mss).min(p.end)];
    let len = p.payload + chunk.len();
    out[..p.payload].copy_from_slice(&frame[..p.payload]);
    out[p.payload..len].copy_from_slice(chunk);

    let last = i + 1 == p.count;
    if p.ipv6 {
        ipv6::set_payload_len(&mut out[p.l3..], (len - p.l3 - ipv6::HEADER_LEN) as u16);
    } else {
        let original = Ipv4Packet::parse(&frame[p.l3..]).expect("the plan read this header");
        let mut ip = ipv4_header(out, p.l3);
        ip.set_total_len((len - p.l3) as u16);
        ip.set_identification(original.identification.wrapping_add(i as u16));
        ip.fill_checksum();
    }

    let original = TcpSegment::parse(&frame[p.l4..p.end]).expect("the plan read this header");
    let mut flags = original.flags;
    if !last {
        flags &= !(FLAG_FIN | FLAG_PSH);
    }
    if i > 0 {
        flags &= !FLAG_CWR;
    }
    let pseudo = pseudo_header(out, p.l3, p.ipv6);
    let mut tcp = TcpSegmentMut::new(&mut out[p.l4..len]).expect("the plan read this header");
    tcp.set_sequence(original.sequence.wrapping_add((i * p.mss) as u32));
    tcp.set_flags(flags);
    tcp.fill_checksum(&pseudo);
    len
}

/// Writes IPv4 fragment `i` of `p` into `out`; returns its length.
fn write_ipv4_fragment(p: &Ipv4FragPlan, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
    let offset = i * p.chunk;
    let data_start = p.payload + offset;
    let data = &frame[data_start..(data_start + p.chunk).min(p.end)];

    let mut at = p.l3 + ipv4::HEADER_LEN;
    out[..at].copy_from_slice(&frame[..at]);
    if i == 0 {
        out[at..p.payload].copy_from_slice(&frame[at..p.payload]);
        at = p.payload;
    } else {
        // Later fragments carry only the options flagged "copied" (RFC 791).
        for option in ipv4::options(&frame[at..p.payload]).filter(|o| ipv4::is_copied_into_fragments(o)) {
            out[at..at + option.len()].copy_from_slice(option);
            at += option.len();
        }
        while !(at - p.l3).is_multiple_of(4) {
            out[at] = 0; // end of option list padding
            at += 1;
        }
        ipv4_header(out, p.l3).set_header_len(at - p.l3);
    }
    let len = at + data.len();
    out[at..len].copy_from_slice(data);
    if i == 0
        && let Some((field, sum)) = p.udp_checksum
    {
        put_u16(out, field - data_start + at, sum);
    }

    let mut ip = ipv4_header(out, p.l3);
    ip.set_total_len((len - p.l3) as u16);
    ip.set_fragment(i + 1 < p.count, offset);
    ip.fill_checksum();
    len
}

/// Writes IPv6 fragment `i` of `p` (Fragment header identification `id`) into `out`.
fn write_ipv6_fragment(p: &Ipv6FragPlan, frame: &[u8], i: usize, id: u32, out: &mut [u8]) -> usize {
    let offset = i * p.chunk;
    let data_start = p.unfragmentable_end + offset;
    let data = &frame[data_start..(data_start + p.chunk).min(p.end)];

    let at = p.unfragmentable_end;
    out[..at].copy_from_slice(&frame[..at]);
    out[p.next_header_field] = NEXT_FRAGMENT;
    let fragment =
        FragmentHeader { next_header: p.next_header, offset, more: i + 1 < p.count, identification: id };
    let body = at + fragment.encode(&mut out[at..]).expect("room for the headers was planned");
    let len = body + data.len();
    out[body..len].copy_from_slice(data);
    if i == 0
        && let Some((field, sum)) = p.udp_checksum
    {
        put_u16(out, field - data_start + body, sum);
    }
    ipv6::set_payload_len(&mut out[p.l3..], (len - p.l3 - ipv6::HEADER_LEN) as u16);
    len
}

/// Writes a checksum computed over the whole datagram into its first fragment.
fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpc_wire::ipv4::IPPROTO_UDP as PROTO_UDP;
    use bpc_wire::ipv6::{
        HEADER_LEN as IPV6_HEADER_LEN, NEXT_DESTINATION_OPTIONS as PROTO_DEST_OPTS,
        NEXT_FRAGMENT as PROTO_FRAGMENT, NEXT_HOP_BY_HOP as PROTO_HOP_BY_HOP,
    };
    use bpc_wire::tcp::{
        FLAG_CWR as TCP_CWR, FLAG_FIN as TCP_FIN, FLAG_PSH as TCP_PSH, IPPROTO_TCP as PROTO_TCP,
    };
    use etherparse::{
        Ipv4HeaderSlice, Ipv6HeaderSlice, NetSlice, SlicedPacket, TcpHeaderSlice, TransportSlice, UdpHeader,
    };
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [198, 18, 0, 1];
    const DST4: [u8; 4] = [198, 18, 0, 2];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    /// NOP, NOP, timestamps: what Linux puts on every bulk segment.
    const TS_OPTIONS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78];
    const ACK: u8 = 0x10;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Ethernet header (optionally with one 802.1Q tag) ending with `ethertype`.
    fn ethernet(vlan: bool, ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn tcp_header(seq: u32, flags: u8, options: &[u8]) -> Vec<u8> {
        assert!(options.len().is_multiple_of(4));
        let mut t = vec![0x9c, 0x40, 0x14, 0x51];
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        t.push((((20 + options.len()) / 4) as u8) << 4);
        t.push(flags);
        t.extend_from_slice(&[0x01, 0xf6, 0xab, 0xcd, 0, 0]); // window, partial checksum, urg
        t.extend_from_slice(options);
        t
    }

    fn ipv4_header(proto: u8, payload_len: usize, id: u16, options: &[u8]) -> Vec<u8> {
        let ihl = 20 + options.len();
        let mut h = vec![0x40 | (ihl / 4) as u8, 0];
        h.extend_from_slice(&((ihl + payload_len) as u16).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]); // DF
        h.extend_from_slice(&SRC4);
        h.extend_from_slice(&DST4);
        h.extend_from_slice(options);
        h
    }

    fn ipv6_header(proto: u8, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0x60, 0x01, 0x23, 0x45];
        h.extend_from_slice(&(payload_len as u16).to_be_bytes());
        h.extend_from_slice(&[proto, 64]);
        h.extend_from_slice(&SRC6);
        h.extend_from_slice(&DST6);
        h
    }

    fn tcp4_frame(vlan: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let tcp = tcp_header(seq, flags, &TS_OPTIONS);
        let mut f = ethernet(vlan, ETHERTYPE_IPV4);
        f.extend(ipv4_header(PROTO_TCP, tcp.len() + data.len(), 0xfffe, &[]));
        f.extend(tcp);
        f.extend_from_slice(data);
        f
    }

    fn tcp6_frame(vlan: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let tcp = tcp_header(seq, flags, &TS_OPTIONS);
        let mut f = ethernet(vlan, ETHERTYPE_IPV6);
        f.extend(ipv6_header(PROTO_TCP, tcp.len() + data.len()));
        f.extend(tcp);
        f.extend_from_slice(data);
        f
    }

    fn udp_datagram(data: &[u8]) -> Vec<u8> {
        let mut u = vec![0x30, 0x39, 0x00, 0x35];
        u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0x55, 0xaa]); // partial sum left for the NIC: wrong on purpose
        u.extend_from_slice(data);
        u
    }

    fn run(seg: &mut Segmenter, frame: &[u8]) -> (Outcome, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let outcome = seg.segment(frame, |f| out.push(f.to_vec()));
        (outcome, out)
    }

    /// Checks every TCP segment with etherparse against the original super-frame
    /// and returns the concatenated payload.
    fn check_tcp_segments(original: &[u8], segments: &[Vec<u8>], max_frame: usize) -> Vec<u8> {
        let orig = SlicedPacket::from_ethernet(original).unwrap();
        let Some(TransportSlice::Tcp(otcp)) = &orig.transport else { panic!("original not TCP") };
        let orig_ipv4_id = match &orig.net {
            Some(NetSlice::Ipv4(ip)) => Some(ip.header().identification()),
            _ => None,
        };
        let mut joined = Vec::new();
        for (i, frame) in segments.iter().enumerate() {
            assert!(frame.len() <= max_frame, "segment {i} is {} bytes", frame.len());
            let last = i + 1 == segments.len();
            let p = SlicedPacket::from_ethernet(frame).unwrap();
            assert_eq!(p.vlan_ids(), orig.vlan_ids());
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else { panic!("segment {i} not TCP") };
            let th = TcpHeaderSlice::from_slice(tcp.header_slice()).unwrap();
            let expected_sum = match &p.net {
                Some(NetSlice::Ipv4(ip)) => {
                    let h = ip.header();
                    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum(), "ip checksum");
                    let ip_len = h.slice().len() + tcp.header_slice().len() + tcp.payload().len();
                    assert_eq!(usize::from(h.total_len()), ip_len);
                    assert_eq!(frame.len() - ip_len, if p.vlan().is_some() { 18 } else { 14 });
                    assert_eq!(h.identification(), orig_ipv4_id.unwrap().wrapping_add(i as u16));
                    assert!(h.dont_fragment());
                    th.calc_checksum_ipv4(&h, tcp.payload()).unwrap()
                }
                Some(NetSlice::Ipv6(ip)) => {
                    let h = ip.header();
                    let l2 = if p.vlan().is_some() { 18 } else { 14 };
                    assert_eq!(usize::from(h.payload_length()), frame.len() - l2 - IPV6_HEADER_LEN);
                    th.calc_checksum_ipv6(&h, tcp.payload()).unwrap()
                }
                _ => panic!("segment {i} not IP"),
            };
            assert_eq!(th.checksum(), expected_sum, "tcp checksum of segment {i}");
            assert_eq!(th.sequence_number(), otcp.sequence_number().wrapping_add(joined.len() as u32));
            assert_eq!(th.acknowledgment_number(), otcp.acknowledgment_number());
            assert_eq!(th.options(), otcp.options(), "options kept on every segment");
            assert_eq!(th.fin(), otcp.fin() && last, "FIN only on the last segment");
            assert_eq!(th.psh(), otcp.psh() && last, "PSH only on the last segment");
            assert_eq!(th.cwr(), otcp.cwr() && i == 0, "CWR only on the first segment");
            assert_eq!((th.ack(), th.ece(), th.syn()), (otcp.ack(), otcp.ece(), otcp.syn()));
            if !last {
                assert_eq!(frame.len(), max_frame, "all but the last segment are full-size");
            }
            joined.extend_from_slice(tcp.payload());
        }
        joined
    }

    #[test]
    fn frames_that_fit_are_passed_through_without_copy() {
        let frame = tcp4_frame(false, 1, ACK, &payload(1000));
        let mut seg = Segmenter::new(1514);
        let mut seen = None;
        let outcome = seg.segment(&frame, |f| seen = Some((f.as_ptr(), f.len())));
        assert_eq!(outcome, Outcome::Unchanged);
        assert_eq!(seen, Some((frame.as_ptr(), frame.len())));
    }

    #[test]
    fn ipv4_tcp_super_frame_becomes_mss_segments_with_options_and_flags_on_the_right_segment() {
        let data = payload(65_000);
        let frame = tcp4_frame(false, 0xffff_f000, ACK | TCP_PSH | TCP_FIN | TCP_CWR, &data);
        let mut seg = Segmenter::new(1514);
        let (outcome, out) = run(&mut seg, &frame);
        // MSS = 1514 - 14 - 20 - 32 = 1448, as Linux would send with timestamps.
        assert_eq!(outcome, Outcome::Segmented { segments: 65_000usize.div_ceil(1448) });
        assert_eq!(out.len(), outcome.frames());
        assert_eq!(check_tcp_segments(&frame, &out, 1514), data);
    }

    #[test]
    fn ipv6_tcp_super_frame_becomes_mss_segments() {
        let data = payload(40_001);
        let frame = tcp6_frame(false, 7, ACK | TCP_PSH, &data);
        let mut seg = Segmenter::new(1514);
        let (outcome, out) = run(&mut seg, &frame);
        // MSS = 1514 - 14 - 40 - 32 = 1428.
        assert_eq!(outcome, Outcome::Segmented { segments: 40_001usize.div_ceil(1428) });
        assert_eq!(check_tcp_segments(&frame, &out, 1514), data);
    }

    #[test]
    fn vlan_tag_is_kept_and_counted_in_the_frame_size() {
        for frame in
            [tcp4_frame(true, 99, ACK, &payload(20_000)), tcp6_frame(true, 99, ACK, &payload(20_000))]
        {
            let mut seg = Segmenter::new(1518);
            let (outcome, out) = run(&mut seg, &frame);
            assert!(matches!(outcome, Outcome::Segmented { .. }));
            assert_eq!(check_tcp_segments(&frame, &out, 1518), payload(20_000));
        }
    }

    #[test]
    fn smaller_max_frame_leaves_room_for_gre_and_outer_ip() {
        let frame = tcp4_frame(false, 5, ACK, &payload(9_000));
        let mut seg = Segmenter::new(1514 - 20 - 12);
        let (_, out) = run(&mut seg, &frame);
        assert_eq!(check_tcp_segments(&frame, &out, 1482), payload(9_000));
    }

    #[test]
    fn ethernet_trailer_after_the_ip_packet_is_not_sent_as_payload() {
        let mut frame = tcp4_frame(false, 5, ACK, &payload(3_000));
        frame.extend_from_slice(&[0xee; 4]);
        let (_, out) = run(&mut Segmenter::new(1514), &frame);
        assert_eq!(check_tcp_segments(&frame, &out, 1514), payload(3_000));
    }

    /// Reassembles IPv4 fragments, checking each one; returns (protocol, payload).
    fn reassemble_ipv4(fragments: &[Vec<u8>], max_frame: usize) -> (u8, Vec<u8>) {
        let mut data = Vec::new();
        let mut ids = Vec::new();
        let mut protocol = 0;
        for (i, frame) in fragments.iter().enumerate() {
            assert!(frame.len() <= max_frame);
            let p = SlicedPacket::from_ethernet(frame).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("fragment {i} not IPv4") };
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            assert!(!h.dont_fragment(), "fragments have DF clear");
            assert_eq!(h.more_fragments(), i + 1 < fragments.len());
            assert_eq!(usize::from(h.fragments_offset().value()) * 8, data.len());
            assert_eq!(usize::from(h.total_len()), h.slice().len() + ip.payload().payload.len());
            if i + 1 < fragments.len() {
                assert!(ip.payload().payload.len().is_multiple_of(8));
            }
            ids.push(h.identification());
            protocol = h.protocol().0;
            data.extend_from_slice(ip.payload().payload);
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one identification for all fragments");
        (protocol, data)
    }

    #[test]
    fn ipv4_udp_super_frame_becomes_fragments_with_a_correct_udp_checksum() {
        let data = payload(30_000);
        let udp = udp_datagram(&data);
        let mut frame = ethernet(false, ETHERTYPE_IPV4);
        frame.extend(ipv4_header(PROTO_UDP, udp.len(), 0x1234, &[]));
        frame.extend_from_slice(&udp);
        let (outcome, out) = run(&mut Segmenter::new(1514), &frame);
        assert_eq!(outcome, Outcome::Fragmented { fragments: udp.len().div_ceil(1480) });
        let (protocol, whole) = reassemble_ipv4(&out, 1514);
        assert_eq!(protocol, PROTO_UDP);
        assert_eq!(&whole[8..], &data[..]);
        assert_eq!(&whole[..6], &udp[..6]);
        let (h, rest) = UdpHeader::from_slice(&whole).unwrap();
        assert_eq!(h.checksum, h.calc_checksum_ipv4_raw(SRC4, DST4, rest).unwrap());
        assert_ne!(h.checksum, 0x55aa);
    }

    #[test]
    fn ipv4_options_only_copied_ones_follow_into_later_fragments() {
        // Router alert (0x94: copy bit set), then record route (7: copy bit clear).
        let options = [0x94, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0];
        let data = payload(5_000);
        let mut frame = ethernet(false, ETHERTYPE_IPV4);
        frame.extend(ipv4_header(1, data.len(), 9, &options));
        frame.extend_from_slice(&data);
        let (outcome, out) = run(&mut Segmenter::new(1514), &frame);
        assert!(matches!(outcome, Outcome::Fragmented { fragments: 4 }), "{outcome:?}");
        let first = Ipv4HeaderSlice::from_slice(&out[0][14..]).unwrap();
        assert_eq!(first.options(), &options);
        for later in &out[1..] {
            let h = Ipv4HeaderSlice::from_slice(&later[14..]).unwrap();
            assert_eq!(h.options(), &[0x94, 4, 0, 0]);
        }
        let (protocol, whole) = reassemble_ipv4(&out, 1514);
        assert_eq!((protocol, whole), (1, data));
    }

    #[test]
    fn ipv6_udp_super_frame_becomes_fragments_with_a_fragment_header() {
        let data = payload(20_000);
        let udp = udp_datagram(&data);
        let mut frame = ethernet(true, ETHERTYPE_IPV6);
        frame.extend(ipv6_header(PROTO_UDP, udp.len()));
        frame.extend_from_slice(&udp);
        let mut seg = Segmenter::new(1518);
        let (outcome, out) = run(&mut seg, &frame);
        let chunk = (1518 - 18 - 40 - 8) & !7;
        assert_eq!(outcome, Outcome::Fragmented { fragments: udp.len().div_ceil(chunk) });
        let mut whole = Vec::new();
        let mut ids = Vec::new();
        for (i, f) in out.iter().enumerate() {
            assert!(f.len() <= 1518);
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("not IPv6") };
            assert!(ip.payload().fragmented);
            assert_eq!(ip.payload().ip_number.0, PROTO_UDP);
            assert_eq!(ip.header().next_header().0, PROTO_FRAGMENT);
            let fh = &f[18 + 40..18 + 48];
            let off_m = u16::from_be_bytes([fh[2], fh[3]]);
            assert_eq!(usize::from(off_m & !7), whole.len());
            assert_eq!(off_m & 1 == 1, i + 1 < out.len());
            ids.push(u32::from_be_bytes(fh[4..8].try_into().unwrap()));
            assert_eq!(usize::from(ip.header().payload_length()), f.len() - 18 - 40);
            whole.extend_from_slice(ip.payload().payload);
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        let (h, rest) = UdpHeader::from_slice(&whole).unwrap();
        assert_eq!(rest, &data[..]);
        assert_eq!(h.checksum, h.calc_checksum_ipv6_raw(SRC6, DST6, rest).unwrap());
        // The next super-frame gets a fresh identification.
        let (_, again) = run(&mut seg, &frame);
        assert_ne!(&again[0][18 + 44..18 + 48], &out[0][18 + 44..18 + 48]);
    }

    #[test]
    fn ipv6_hop_by_hop_header_stays_in_the_unfragmentable_part() {
        let data = payload(4_000);
        let udp = udp_datagram(&data);
        let hop_by_hop = [PROTO_UDP, 0, 1, 4, 0, 0, 0, 0]; // PadN
        let mut frame = ethernet(false, ETHERTYPE_IPV6);
        frame.extend(ipv6_header(PROTO_HOP_BY_HOP, 8 + udp.len()));
        frame.extend_from_slice(&hop_by_hop);
        frame.extend_from_slice(&udp);
        let (outcome, out) = run(&mut Segmenter::new(1514), &frame);
        assert!(matches!(outcome, Outcome::Fragmented { fragments: 3 }), "{outcome:?}");
        let mut whole = Vec::new();
        for f in &out {
            assert_eq!(f[14 + 6], PROTO_HOP_BY_HOP);
            assert_eq!(f[54], PROTO_FRAGMENT, "hop-by-hop now points at the fragment header");
            assert_eq!(f[62], PROTO_UDP);
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("not IPv6") };
            whole.extend_from_slice(ip.payload().payload);
        }
        let (h, rest) = UdpHeader::from_slice(&whole).unwrap();
        assert_eq!(rest, &data[..]);
        assert_eq!(h.checksum, h.calc_checksum_ipv6_raw(SRC6, DST6, rest).unwrap());
    }

    #[test]
    fn unsplittable_frames_are_emitted_whole() {
        let mut arp_like = ethernet(false, 0x88b5);
        arp_like.extend(payload(3000));
        let mut snapped = tcp4_frame(false, 1, ACK, &payload(5000));
        snapped.truncate(2000); // snap length cut it: the rest of the payload is gone
        let mut fragment = tcp4_frame(false, 1, ACK, &payload(5000));
        fragment[14 + 6] = 0x20; // MF
        let mut lying = tcp4_frame(false, 1, ACK, &payload(5000));
        lying[14 + 2..14 + 4].copy_from_slice(&10u16.to_be_bytes()); // total length < IHL
        let mut udp_len_lies = ethernet(false, ETHERTYPE_IPV4);
        let udp = udp_datagram(&payload(3000));
        udp_len_lies.extend(ipv4_header(PROTO_UDP, udp.len(), 1, &[]));
        udp_len_lies.extend_from_slice(&udp);
        udp_len_lies[14 + 20 + 4] = 0;
        for frame in [arp_like, snapped, fragment, lying, udp_len_lies] {
            let (outcome, out) = run(&mut Segmenter::new(1514), &frame);
            assert_eq!(outcome, Outcome::Unsplittable);
            assert_eq!(out, vec![frame]);
        }
    }

    #[test]
    fn max_frame_too_small_for_the_headers_is_unsplittable() {
        let frame = tcp4_frame(false, 1, ACK, &payload(3000));
        let (outcome, _) = run(&mut Segmenter::new(66), &frame);
        assert_eq!(outcome, Outcome::Unsplittable);
        let (outcome, out) = run(&mut Segmenter::new(67), &frame);
        assert_eq!(outcome, Outcome::Segmented { segments: 3000 });
        assert_eq!(check_tcp_segments(&frame, &out, 67), payload(3000));
    }

    #[test]
    fn ipv6_tcp_with_extension_headers_keeps_them_on_every_segment() {
        let data = payload(10_000);
        let tcp = tcp_header(1, ACK | TCP_FIN, &TS_OPTIONS);
        let dest_opts = [PROTO_TCP, 0, 1, 4, 0, 0, 0, 0];
        let mut frame = ethernet(false, ETHERTYPE_IPV6);
        frame.extend(ipv6_header(PROTO_DEST_OPTS, 8 + tcp.len() + data.len()));
        frame.extend_from_slice(&dest_opts);
        frame.extend(tcp);
        frame.extend_from_slice(&data);
        let (outcome, out) = run(&mut Segmenter::new(1514), &frame);
        // MSS = 1514 - 14 - 40 - 8 - 32 = 1420.
        assert_eq!(outcome, Outcome::Segmented { segments: 10_000usize.div_ceil(1420) });
        for f in &out {
            assert_eq!(&f[54..62], &dest_opts);
            let h = Ipv6HeaderSlice::from_slice(&f[14..]).unwrap();
            assert_eq!(usize::from(h.payload_length()), f.len() - 54);
        }
        assert_eq!(check_tcp_segments(&frame, &out, 1514), data);
    }

    fn check_any_output(max_frame: usize, frame: &[u8]) -> Result<(), TestCaseError> {
        let mut seg = Segmenter::new(max_frame);
        let mut sizes = Vec::new();
        let outcome = seg.segment(frame, |f| sizes.push(f.len()));
        prop_assert_eq!(sizes.len(), outcome.frames());
        match outcome {
            Outcome::Unchanged => prop_assert!(frame.len() <= max_frame),
            Outcome::Unsplittable => prop_assert_eq!(sizes, vec![frame.len()]),
            _ => prop_assert!(sizes.iter().all(|&s| s <= max_frame)),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_tcp_super_frame_splits_into_valid_segments(v6 in any::<bool>(), vlan in any::<bool>(),
                                                          len in 0usize..66_000, seq in any::<u32>(),
                                                          flags in any::<u8>(), slack in 0usize..1400) {
            let flags = (flags | ACK) & !0x06; // no SYN/RST on bulk data
            let data = payload(len);
            let frame = if v6 { tcp6_frame(vlan, seq, flags, &data) } else { tcp4_frame(vlan, seq, flags, &data) };
            // The IP length fields are 16 bits: an IPv4 total length (IPv6
            // payload length) above 65,535 would wrap and make an inconsistent frame.
            let eth_len = if vlan { 18 } else { 14 };
            let ip_len_field = frame.len() - eth_len - if v6 { 40 } else { 0 };
            prop_assume!(ip_len_field <= 65_535);
            let max_frame = frame.len().saturating_sub(1).min(128 + slack);
            // Ethernet (+ VLAN), IP and TCP headers: copied into every segment.
            let headers = frame.len() - data.len();
            let (outcome, out) = run(&mut Segmenter::new(max_frame), &frame);
            if frame.len() <= max_frame {
                prop_assert_eq!(outcome, Outcome::Unchanged);
            } else if max_frame <= headers {
                // No room for a single payload byte after the headers (a frame
                // with 0 or 1 payload bytes, one byte over the limit): no segment
                // can be built, so the frame goes out whole, as documented.
                prop_assert_eq!(outcome, Outcome::Unsplittable);
                prop_assert_eq!(out, vec![frame.clone()]);
            } else {
                prop_assert!(matches!(outcome, Outcome::Segmented { .. }), "{:?}", outcome);
                prop_assert_eq!(check_tcp_segments(&frame, &out, max_frame), data);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000),
                                    ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), any::<u16>()],
                                    max_frame in 0usize..1600) {
            let mut frame = bytes;
            if frame.len() >= 14 {
                frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
            }
            check_any_output(max_frame, &frame)?;
        }

        #[test]
        fn mutated_super_frames_never_panic(kind in 0u8..4, len in 0usize..6000,
                                            edits in proptest::collection::vec((0usize..120, any::<u8>()), 1..6),
                                            cut in proptest::option::of(0usize..7000),
                                            max_frame in 40usize..1600) {
            let mut frame = match kind {
                0 => tcp4_frame(false, 1, ACK | TCP_FIN, &payload(len)),
                1 => tcp6_frame(true, 1, ACK, &payload(len)),
                2 => { let mut f = ethernet(false, ETHERTYPE_IPV4); let u = udp_datagram(&payload(len));
                       f.extend(ipv4_header(PROTO_UDP, u.len(), 3, &[])); f.extend(u); f }
                _ => { let mut f = ethernet(true, ETHERTYPE_IPV6); let u = udp_datagram(&payload(len));
                       f.extend(ipv6_header(PROTO_UDP, u.len())); f.extend(u); f }
            };
            for (at, value) in edits {
                if at < frame.len() { frame[at] = value; }
            }
            if let Some(cut) = cut { frame.truncate(cut); }
            check_any_output(max_frame, &frame)?;
        }
    }
}
