//! What a receiver reads from a decapsulated (inner) Ethernet frame: the
//! flow it belongs to (addresses, IP protocol, ports) and its transport
//! header (TCP's flags, UDP's payload), through the views of [`ethernet`],
//! [`ipv4`], [`ipv6`], [`tcp`] and [`udp`] ([`Ports`] for both).
//!
//! A frame whose IP or transport header is cut short or broken is no flow
//! at all (the receiver counts it as a stream packet, not in a flow); a
//! fragment is a flow without ports.
//!
//! [`ethernet`]: crate::ethernet
//! [`ipv4`]: crate::ipv4
//! [`ipv6`]: crate::ipv6
//! [`tcp`]: crate::tcp
//! [`udp`]: crate::udp

use std::borrow::Cow;
use std::net::IpAddr;

use crate::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame};
use crate::ipv4::{IPPROTO_UDP, Ipv4Packet};
use crate::ipv6::{Ipv6Packet, NEXT_AUTH, auth_header_len};
use crate::ports::Ports;
use crate::tcp::{IPPROTO_TCP, TcpSegment};
use crate::udp::UdpDatagram;

/// The IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// The IP protocol number of IGMP.
pub const IPPROTO_IGMP: u8 = 2;
/// The IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// The fixed part every ICMP, ICMPv6 and IGMP message has.
const ICMP_MIN_LEN: usize = 8;
/// VLAN tags read before the EtherType; a frame with more is not looked into.
pub const MAX_VLAN_TAGS: usize = 3;

/// The transport header of an inner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp(TcpSegment<'a>),
    /// A UDP datagram.
    Udp(UdpDatagram<'a>),
    /// No ports: ICMP, ICMPv6, IGMP, another protocol, or a fragment.
    Portless,
}

/// The flow an inner frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerFlow<'a> {
    /// IPv4: the header's protocol field; IPv6: the upper-layer protocol
    /// after the extension headers.
    pub protocol: u8,
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// The transport header.
    pub transport: Transport<'a>,
}

impl<'a> InnerFlow<'a> {
    /// Reads the flow of an Ethernet frame; `None` when it carries no IPv4
    /// or IPv6 packet, or a header is cut short or broken: an IP packet
    /// shorter than its length field, a TCP or UDP header that does not
    /// decode, an ICMP or IGMP message under 8 bytes. Never panics.
    pub fn parse(frame: &'a [u8]) -> Option<Self> {
        let ethernet = EthernetFrame::parse(frame).ok().filter(|e| e.vlan_tags <= MAX_VLAN_TAGS)?;
        let (protocol, source, destination, fragment, next, upper) = match ethernet.ethertype {
            ETHERTYPE_IPV4 => {
                let ip = Ipv4Packet::parse(ethernet.payload).ok().filter(Ipv4Packet::is_whole)?;
                // An authentication header before the transport (the flow keeps protocol 51).
                let (next, upper) = if ip.protocol == NEXT_AUTH {
                    let len = auth_header_len(ip.payload).ok()?;
                    (*ip.payload.first()?, ip.payload.get(len..)?)
                } else {
                    (ip.protocol, ip.payload)
                };
                (ip.protocol, IpAddr::V4(ip.source), IpAddr::V4(ip.destination), ip.fragment, next, upper)
            }
            ETHERTYPE_IPV6 => {
                let ip = Ipv6Packet::parse(ethernet.payload).ok()?;
                let (source, destination) = (IpAddr::V6(ip.source), IpAddr::V6(ip.destination));
                (ip.protocol, source, destination, ip.fragment, ip.protocol, ip.payload)
            }
            _ => return None,
        };
        let transport = match next {
            _ if fragment => Transport::Portless,
            IPPROTO_TCP => Transport::Tcp(TcpSegment::parse(upper).ok()?),
            IPPROTO_UDP => Transport::Udp(UdpDatagram::parse(upper).ok()?),
            IPPROTO_ICMP | IPPROTO_ICMPV6 | IPPROTO_IGMP if upper.len() < ICMP_MIN_LEN => return None,
            _ => Transport::Portless,
        };
        Some(Self { protocol, source, destination, transport })
    }

    /// Source and destination port; both 0 without ports.
    pub fn ports(&self) -> Ports {
        match self.transport {
            Transport::Tcp(t) => t.ports,
            Transport::Udp(u) => u.ports,
            Transport::Portless => Ports::default(),
        }
    }
}

/// The name reports give an IP protocol: `tcp`, `udp`, `icmp` (ICMP and
/// ICMPv6), otherwise its number.
pub fn protocol_name(protocol: u8) -> Cow<'static, str> {
    match protocol {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP | IPPROTO_ICMPV6 => "icmp".into(),
        n => n.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);

    /// What the receiver read with etherparse before: protocol, addresses,
    /// ports, TCP flags and the UDP payload; the oracle of these tests.
    type Seen<'a> = (u8, IpAddr, IpAddr, (u16, u16), Option<(bool, bool, bool)>, Option<&'a [u8]>);

    fn etherparse_view(frame: &[u8]) -> Option<Seen<'_>> {
        let p = SlicedPacket::from_ethernet(frame).ok()?;
        let (proto, s, d) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                (ip.header().protocol().0, ip.header().source().into(), ip.header().destination().into())
            }
            Some(NetSlice::Ipv6(ip)) => {
                (ip.payload().ip_number.0, ip.header().source().into(), ip.header().destination().into())
            }
            _ => return None,
        };
        Some(match &p.transport {
            Some(TransportSlice::Tcp(t)) => (
                proto,
                s,
                d,
                (t.source_port(), t.destination_port()),
                Some((t.syn(), t.ack(), t.rst())),
                None,
            ),
            Some(TransportSlice::Udp(u)) => {
                (proto, s, d, (u.source_port(), u.destination_port()), None, Some(u.payload()))
            }
            _ => (proto, s, d, (0, 0), None, None),
        })
    }

    fn wire_view(frame: &[u8]) -> Option<Seen<'_>> {
        let f = InnerFlow::parse(frame)?;
        let (flags, payload) = match f.transport {
            Transport::Tcp(t) => (Some((t.syn(), t.ack(), t.rst())), None),
            Transport::Udp(u) => (None, Some(u.payload)),
            Transport::Portless => (None, None),
        };
        let Ports { source, destination } = f.ports();
        Some((f.protocol, f.source, f.destination, (source, destination), flags, payload))
    }

    /// Frames of every shape the receiver meets: TCP with options and
    /// flags, UDP, ICMP and ICMPv6, another protocol, over IPv4 and IPv6,
    /// with and without VLAN tags.
    fn frames() -> Vec<Vec<u8>> {
        let v4 = || PacketBuilder::ethernet2(MACS.0, MACS.1).ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64);
        let v6 = || {
            let (a, b) = (
                [0x20, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            );
            PacketBuilder::ethernet2(MACS.0, MACS.1).ipv6(a, b, 64)
        };
        let payload = b"BPCT\0\0\0\0\0\0\0\x01 and more";
        let mut out = Vec::new();
        // Each builder step is its own type: a macro writes any of them.
        macro_rules! put {
            ($builder:expr, $payload:expr $(,)?) => {{
                let mut f = Vec::new();
                $builder.write(&mut f, $payload).unwrap();
                out.push(f);
            }};
        }
        put!(v4().tcp(40000, 80, 1, 1024).syn(), b"");
        put!(v4().tcp(40000, 80, 1, 1024).ack(7).rst(), b"");
        put!(
            v4().tcp(40000, 80, 1, 1024)
                .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
                .unwrap()
                .syn()
                .ack(1),
            b"",
        );
        put!(v4().udp(53000, 53), payload);
        put!(v4().icmpv4_echo_request(1, 2), b"ping");
        put!(v6().tcp(40000, 443, 1, 1024).syn().ack(1), b"hello");
        put!(v6().udp(53000, 4789), payload);
        put!(v6().icmpv6_echo_request(1, 2), b"ping6");
        let mut gre = Vec::new();
        PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .write(&mut gre, etherparse::IpNumber(47), b"GRE payload")
            .unwrap();
        out.push(gre);
        let mut tagged = Vec::new();
        PacketBuilder::ethernet2(MACS.0, MACS.1)
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(1, 2)
            .write(&mut tagged, b"tagged")
            .unwrap();
        out.push(tagged);
        out
    }

    #[test]
    fn every_frame_and_every_cut_of_it_reads_as_etherparse_reads_it() {
        for frame in frames() {
            assert!(wire_view(&frame).is_some(), "{frame:02x?}");
            for cut in 0..=frame.len() {
                assert_eq!(
                    wire_view(&frame[..cut]),
                    etherparse_view(&frame[..cut]),
                    "cut {cut} of {frame:02x?}"
                );
            }
            // Ethernet padding after the IP packet is not UDP payload.
            let mut padded = frame.clone();
            padded.extend([0; 9]);
            assert_eq!(wire_view(&padded), etherparse_view(&padded));
        }
    }

    #[test]
    fn fragments_are_flows_without_ports_as_etherparse_reads_them() {
        for frame in frames().into_iter().take(4) {
            let mut more_fragments = frame.clone();
            more_fragments[14 + 6] |= 0x20;
            let mut later_fragment = frame.clone();
            later_fragment[14 + 7] = 1;
            for f in [more_fragments, later_fragment] {
                let seen = wire_view(&f).unwrap();
                assert_eq!((seen.3, seen.4, seen.5), ((0, 0), None, None));
                assert_eq!(Some(seen), etherparse_view(&f));
            }
        }
    }

    #[test]
    fn broken_headers_read_as_etherparse_reads_them() {
        let frames = frames();
        let mut broken = Vec::new();
        // A TCP data offset below 5, a UDP length below 8 and beyond the
        // datagram, an IPv4 total length below the header and beyond the frame.
        let mut f = frames[0].clone();
        f[14 + 20 + 12] = 4 << 4;
        broken.push(f);
        for length in [7u16, 200] {
            let mut f = frames[3].clone();
            f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&length.to_be_bytes());
            broken.push(f);
        }
        for total in [19u16, 2000] {
            let mut f = frames[3].clone();
            f[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
            broken.push(f);
        }
        // Four VLAN tags: etherparse reads three.
        let mut f = frames[3][..12].to_vec();
        for _ in 0..4 {
            f.extend([0x81, 0x00, 0, 7]);
        }
        f.extend(&frames[3][12..]);
        broken.push(f);
        for f in broken {
            assert_eq!(wire_view(&f), None, "{f:02x?}");
            assert_eq!(etherparse_view(&f), None, "{f:02x?}");
        }
    }

    #[test]
    fn protocols_have_the_names_reports_give_them() {
        let names: Vec<_> = [6, 17, 1, 58, 47].into_iter().map(protocol_name).collect();
        assert_eq!(names, ["tcp", "udp", "icmp", "icmp", "47"]);
    }
}
