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

use bpc_wire::internet_checksum;
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};

const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;
const PROTO_HOP_BY_HOP: u8 = 0;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_DEST_OPTS: u8 = 60;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
const IPV4_FLAG_MF: u16 = 0x2000;
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;
/// An IPv4 option with this bit set must be copied into every fragment (RFC 791).
const IPV4_OPTION_COPIED: u8 = 0x80;

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

    /// The largest frame this segmenter emits.
    pub fn max_frame(&self) -> usize {
        self.max_frame
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
        let (l3, ethertype) = skip_ethernet(frame)?;
        match ethertype {
            ETHERTYPE_IPV4 => self.plan_ipv4(frame, l3),
            ETHERTYPE_IPV6 => self.plan_ipv6(frame, l3),
            _ => None,
        }
    }

    fn plan_ipv4(&self, frame: &[u8], l3: usize) -> Option<Plan> {
        let ip = Ipv4HeaderSlice::from_slice(&frame[l3..]).ok()?;
        let ihl = usize::from(ip.ihl()) * 4;
        let total = usize::from(ip.total_len());
        // A total length shorter than the header lies; a longer one than the
        // capture means the snap length cut the packet: its payload is gone.
        if total < ihl || l3 + total > frame.len() {
            return None;
        }
        let end = l3 + total;
        let frag = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]);
        if frag & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET_MASK) != 0 {
            return None; // re-fragmenting a fragment: rare, leave it whole
        }
        let l4 = l3 + ihl;
        if ip.protocol().0 == PROTO_TCP {
            return self.plan_tcp(frame, false, l3, l4, end).map(Plan::Tcp);
        }
        let room = self.max_frame.checked_sub(l4)?;
        let chunk = room & !7;
        if chunk == 0 {
            return None;
        }
        let udp_checksum = if ip.protocol().0 == PROTO_UDP {
            Some((l4 + 6, udp_checksum(frame, l4, end, Pseudo::V4(ip.source(), ip.destination()))?))
        } else {
            None
        };
        let count = (end - l4).div_ceil(chunk);
        Some(Plan::Ipv4Fragments(Ipv4FragPlan { l3, payload: l4, end, chunk, count, udp_checksum }))
    }

    fn plan_ipv6(&self, frame: &[u8], l3: usize) -> Option<Plan> {
        let ip = Ipv6HeaderSlice::from_slice(&frame[l3..]).ok()?;
        let payload_len = usize::from(ip.payload_length());
        // Payload length 0 means a jumbogram (hop-by-hop option): not handled.
        if payload_len == 0 || l3 + IPV6_HEADER_LEN + payload_len > frame.len() {
            return None;
        }
        let end = l3 + IPV6_HEADER_LEN + payload_len;
        // Walk the extension headers to the upper layer, remembering where the
        // unfragmentable part (RFC 8200 4.5) ends.
        let mut next = ip.next_header().0;
        let mut next_field = l3 + 6;
        let mut at = l3 + IPV6_HEADER_LEN;
        let mut unfragmentable_end = at;
        let mut unfragmentable_next_field = next_field;
        loop {
            match next {
                PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS => {
                    if at + 2 > end {
                        return None;
                    }
                    let len = (usize::from(frame[at + 1]) + 1) * 8;
                    if at + len > end {
                        return None;
                    }
                    let this = next;
                    next = frame[at];
                    next_field = at;
                    at += len;
                    if this != PROTO_DEST_OPTS {
                        unfragmentable_end = at;
                        unfragmentable_next_field = next_field;
                    }
                }
                // Already a fragment, or headers (AH, ESP, ...) we cannot rewrite.
                PROTO_FRAGMENT => return None,
                _ => break,
            }
        }
        if next == PROTO_TCP {
            return self.plan_tcp(frame, true, l3, at, end).map(Plan::Tcp);
        }
        let room = self.max_frame.checked_sub(unfragmentable_end + IPV6_FRAGMENT_HEADER_LEN)?;
        let chunk = room & !7;
        if chunk == 0 {
            return None;
        }
        // The UDP checksum is written into the first fragment: its header must be there.
        if next == PROTO_UDP && at + 8 > unfragmentable_end + chunk {
            return None;
        }
        let udp_checksum = if next == PROTO_UDP {
            let src: [u8; 16] = frame[l3 + 8..l3 + 24].try_into().ok()?;
            let dst: [u8; 16] = frame[l3 + 24..l3 + 40].try_into().ok()?;
            Some((at + 6, udp_checksum(frame, at, end, Pseudo::V6(src, dst))?))
        } else {
            None
        };
        let count = (end - unfragmentable_end).div_ceil(chunk);
        Some(Plan::Ipv6Fragments(Ipv6FragPlan {
            l3,
            unfragmentable_end,
            next_header_field: unfragmentable_next_field,
            next_header: frame[unfragmentable_next_field],
            end,
            chunk,
            count,
            udp_checksum,
        }))
    }

    fn plan_tcp(&self, frame: &[u8], ipv6: bool, l3: usize, l4: usize, end: usize) -> Option<TcpPlan> {
        let tcp = TcpHeaderSlice::from_slice(&frame[l4..end]).ok()?;
        let payload = l4 + tcp.slice().len();
        let mss = self.max_frame.checked_sub(payload).filter(|&m| m > 0)?;
        let count = (end - payload).div_ceil(mss).max(1);
        Some(TcpPlan { ipv6, l3, l4, payload, end, mss, count })
    }
}

/// Returns the offset of the IP header and the ethertype, skipping up to two VLAN tags.
fn skip_ethernet(frame: &[u8]) -> Option<(usize, u16)> {
    let mut at = ETH_HEADER_LEN - 2;
    for _ in 0..3 {
        let ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            at += VLAN_TAG_LEN;
        } else {
            return Some((at + 2, ethertype));
        }
    }
    None
}

enum Pseudo {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

/// Recomputes the checksum of the UDP datagram `frame[l4..end]`; `None` when
/// its length field disagrees with the IP length.
fn udp_checksum(frame: &[u8], l4: usize, end: usize, pseudo: Pseudo) -> Option<u16> {
    let udp = frame.get(l4..end)?;
    if udp.len() < 8 || usize::from(u16::from_be_bytes([udp[4], udp[5]])) != udp.len() {
        return None;
    }
    let sum = match pseudo {
        Pseudo::V4(src, dst) => {
            let len = (udp.len() as u16).to_be_bytes();
            let tail = [0, PROTO_UDP, len[0], len[1]];
            internet_checksum(&[&src, &dst, &tail, &udp[..6], &udp[8..]])
        }
        Pseudo::V6(src, dst) => {
            let len = (udp.len() as u32).to_be_bytes();
            let tail = [len[0], len[1], len[2], len[3], 0, 0, 0, PROTO_UDP];
            internet_checksum(&[&src, &dst, &tail, &udp[..6], &udp[8..]])
        }
    };
    // Zero means "no checksum" in UDP; its one's complement twin stands in.
    Some(if sum == 0 { 0xffff } else { sum })
}

fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn ipv4_header_checksum(buf: &mut [u8], l3: usize, ihl: usize) {
    put_u16(buf, l3 + 10, 0);
    let sum = internet_checksum(&[&buf[l3..l3 + ihl]]);
    put_u16(buf, l3 + 10, sum);
}

/// Writes TCP segment `i` of `p` into `out`; returns its length.
fn write_tcp_segment(p: &TcpPlan, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
    let start = p.payload + i * p.mss;
    let chunk = &frame[start..(start + p.mss).min(p.end)];
    let len = p.payload + chunk.len();
    out[..p.payload].copy_from_slice(&frame[..p.payload]);
    out[p.payload..len].copy_from_slice(chunk);

    let last = i + 1 == p.count;
    let tcp_len = len - p.l4;
    if p.ipv6 {
        put_u16(out, p.l3 + 4, (len - p.l3 - IPV6_HEADER_LEN) as u16);
    } else {
        let ihl = p.l4 - p.l3;
        put_u16(out, p.l3 + 2, (len - p.l3) as u16);
        let id = u16::from_be_bytes([frame[p.l3 + 4], frame[p.l3 + 5]]).wrapping_add(i as u16);
        put_u16(out, p.l3 + 4, id);
        ipv4_header_checksum(out, p.l3, ihl);
    }

    let seq = u32::from_be_bytes(frame[p.l4 + 4..p.l4 + 8].try_into().expect("4 bytes"));
    let seq = seq.wrapping_add((i * p.mss) as u32);
    out[p.l4 + 4..p.l4 + 8].copy_from_slice(&seq.to_be_bytes());
    let mut flags = frame[p.l4 + 13];
    if !last {
        flags &= !(TCP_FIN | TCP_PSH);
    }
    if i > 0 {
        flags &= !TCP_CWR;
    }
    out[p.l4 + 13] = flags;

    put_u16(out, p.l4 + 16, 0);
    let sum = if p.ipv6 {
        let l = (tcp_len as u32).to_be_bytes();
        let tail = [l[0], l[1], l[2], l[3], 0, 0, 0, PROTO_TCP];
        internet_checksum(&[&out[p.l3 + 8..p.l3 + 40], &tail, &out[p.l4..len]])
    } else {
        let l = (tcp_len as u16).to_be_bytes();
        let tail = [0, PROTO_TCP, l[0], l[1]];
        internet_checksum(&[&out[p.l3 + 12..p.l3 + 20], &tail, &out[p.l4..len]])
    };
    put_u16(out, p.l4 + 16, sum);
    len
}

/// Writes IPv4 fragment `i` of `p` into `out`; returns its length.
fn write_ipv4_fragment(p: &Ipv4FragPlan, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
    let offset = i * p.chunk;
    let data_start = p.payload + offset;
    let data = &frame[data_start..(data_start + p.chunk).min(p.end)];

    let mut at = p.l3 + IPV4_MIN_HEADER_LEN;
    out[..at].copy_from_slice(&frame[..at]);
    if i == 0 {
        out[at..p.payload].copy_from_slice(&frame[at..p.payload]);
        at = p.payload;
    } else {
        // Later fragments carry only the options flagged "copied" (RFC 791).
        let options = &frame[at..p.payload];
        let mut o = 0;
        while o < options.len() {
            let kind = options[o];
            let olen = match kind {
                0 => break,
                1 => 1,
                _ => match options.get(o + 1) {
                    Some(&l) if l >= 2 && o + usize::from(l) <= options.len() => usize::from(l),
                    _ => break,
                },
            };
            if kind & IPV4_OPTION_COPIED != 0 {
                out[at..at + olen].copy_from_slice(&options[o..o + olen]);
                at += olen;
            }
            o += olen;
        }
        while (at - p.l3) % 4 != 0 {
            out[at] = 0; // end of option list padding
            at += 1;
        }
        out[p.l3] = 0x40 | ((at - p.l3) / 4) as u8;
    }
    let ihl = at - p.l3;
    let len = at + data.len();
    out[at..len].copy_from_slice(data);
    if i == 0
        && let Some((field, sum)) = p.udp_checksum
    {
        put_u16(out, field - data_start + at, sum);
    }

    put_u16(out, p.l3 + 2, (len - p.l3) as u16);
    let more = if i + 1 < p.count { IPV4_FLAG_MF } else { 0 };
    // DF cleared: a fragment must be allowed to exist.
    put_u16(out, p.l3 + 6, more | (offset / 8) as u16);
    ipv4_header_checksum(out, p.l3, ihl);
    len
}

/// Writes IPv6 fragment `i` of `p` (Fragment header identification `id`) into `out`.
fn write_ipv6_fragment(p: &Ipv6FragPlan, frame: &[u8], i: usize, id: u32, out: &mut [u8]) -> usize {
    let offset = i * p.chunk;
    let data_start = p.unfragmentable_end + offset;
    let data = &frame[data_start..(data_start + p.chunk).min(p.end)];

    let at = p.unfragmentable_end;
    out[..at].copy_from_slice(&frame[..at]);
    out[p.next_header_field] = PROTO_FRAGMENT;
    let more = u16::from(i + 1 < p.count);
    out[at] = p.next_header;
    out[at + 1] = 0;
    put_u16(out, at + 2, offset as u16 | more);
    out[at + 4..at + 8].copy_from_slice(&id.to_be_bytes());
    let body = at + IPV6_FRAGMENT_HEADER_LEN;
    let len = body + data.len();
    out[body..len].copy_from_slice(data);
    if i == 0
        && let Some((field, sum)) = p.udp_checksum
    {
        put_u16(out, field - data_start + body, sum);
    }
    put_u16(out, p.l3 + 4, (len - p.l3 - IPV6_HEADER_LEN) as u16);
    len
}
