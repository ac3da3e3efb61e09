//! Ethernet II framing: the 14-byte header, 802.1Q / 802.1ad tags, and the
//! tag a capture socket strips put back where it was.
//!
//! ```text
//! | destination MAC (6) | source MAC (6) | [TPID (2) | TCI (2)]* | EtherType (2) | payload
//! ```
//!
//! A Linux packet socket delivers VLAN frames without their tag (it is in the
//! ring header instead); a frame is forwarded or written to a pcap as it was
//! on the wire only once the tag is back after the two MAC addresses.

use crate::error::WireError;
use crate::ipv4::Ipv4Packet;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ) service tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The untagged Ethernet header: two MAC addresses and the EtherType.
pub const HEADER_LEN: usize = 14;
/// The two MAC addresses: a VLAN tag goes right after them.
pub const MACS_LEN: usize = 12;
/// One VLAN tag (TPID and TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// An untagged Ethernet header to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetHeader {
    /// Destination MAC address.
    pub destination: [u8; 6],
    /// Source MAC address.
    pub source: [u8; 6],
    /// The payload's EtherType ([`ETHERTYPE_IPV4`], ...).
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Writes the 14 header bytes at the start of `out`; returns 14.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let available = out.len();
        let out =
            out.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall { needed: HEADER_LEN, available })?;
        out[..6].copy_from_slice(&self.destination);
        out[6..12].copy_from_slice(&self.source);
        out[12..].copy_from_slice(&self.ethertype.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// A decoded Ethernet frame: addresses, the VLAN tags walked over, and a
/// borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    /// Destination MAC address.
    pub destination: [u8; 6],
    /// Source MAC address.
    pub source: [u8; 6],
    /// How many 802.1Q / 802.1ad tags precede the EtherType.
    pub vlan_tags: usize,
    /// The EtherType after the tags.
    pub ethertype: u16,
    /// Length of the header read, tags included.
    pub header_len: usize,
    /// Everything after the header (the IP packet, with any Ethernet padding).
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Decodes the header, walking every VLAN tag. Never panics, whatever
    /// the input.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let truncated =
            |needed| WireError::TruncatedHeader { header: "Ethernet", needed, available: buf.len() };
        let (macs, _) = buf.split_first_chunk::<MACS_LEN>().ok_or(truncated(HEADER_LEN))?;
        let mut at = MACS_LEN;
        let mut vlan_tags = 0;
        let ethertype = loop {
            let word = buf.get(at..at + 2).ok_or(truncated(at + 2))?;
            let ethertype = u16::from_be_bytes([word[0], word[1]]);
            if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
                break ethertype;
            }
            at += VLAN_TAG_LEN;
            vlan_tags += 1;
        };
        let header_len = at + 2;
        let mut destination = [0; 6];
        let mut source = [0; 6];
        destination.copy_from_slice(&macs[..6]);
        source.copy_from_slice(&macs[6..]);
        Ok(Self { destination, source, vlan_tags, ethertype, header_len, payload: &buf[header_len..] })
    }

    /// The frame length its IP header announces (Ethernet header, tags and
    /// the whole IP packet), for a frame cut short by a snap length. `None`
    /// when the payload is neither IPv4 nor IPv6 or too short to say.
    pub fn announced_len(&self) -> Option<usize> {
        let ip_len = match self.ethertype {
            ETHERTYPE_IPV4 => usize::from(Ipv4Packet::parse(self.payload).ok()?.total_len),
            ETHERTYPE_IPV6 => match self.payload {
                // Version 6, then the payload length at bytes 4-5.
                [v, _, _, _, hi, lo, ..] if v >> 4 == 6 => {
                    crate::ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([*hi, *lo]))
                }
                _ => return None,
            },
            _ => return None,
        };
        Some(self.header_len + ip_len)
    }
}

/// A MAC address from its text form `aa:bb:cc:dd:ee:ff` (as sysfs,
/// `/proc/net/arp` and `ip link` print it); `None` unless it is six hex bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A MAC address shown as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacText(pub [u8; 6]);

impl core::fmt::Display for MacText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A frame with its VLAN tag put back after the MAC addresses, as the three
/// borrowed pieces a vectored send takes (no copy), or written out whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retagged<'a> {
    /// The MAC addresses (the first 12 bytes of the untagged frame).
    pub macs: &'a [u8],
    /// The tag: TPID and TCI, big-endian.
    pub tag: &'a [u8; VLAN_TAG_LEN],
    /// The rest of the untagged frame (EtherType onwards).
    pub rest: &'a [u8],
}

impl<'a> Retagged<'a> {
    /// Splits `frame` to take `tag` after its MAC addresses; `None` when the
    /// frame is too short to hold them (it is then sent as it is).
    pub fn new(frame: &'a [u8], tag: &'a [u8; VLAN_TAG_LEN]) -> Option<Self> {
        let (macs, rest) = frame.split_at_checked(MACS_LEN)?;
        Some(Self { macs, tag, rest })
    }

    /// Length of the tagged frame.
    pub const fn len(&self) -> usize {
        self.macs.len() + VLAN_TAG_LEN + self.rest.len()
    }

    /// Always false: a tagged frame holds at least its MAC addresses and tag.
    /// Present for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The tagged frame in wire order, as pieces.
    pub fn parts(&self) -> [&'a [u8]; 3] {
        [self.macs, self.tag, self.rest]
    }

    /// Writes the tagged frame contiguously into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(WireError::BufferTooSmall { needed: len, available })?;
        let (macs, rest) = out.split_at_mut(MACS_LEN);
        macs.copy_from_slice(self.macs);
        rest[..VLAN_TAG_LEN].copy_from_slice(self.tag);
        rest[VLAN_TAG_LEN..].copy_from_slice(self.rest);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_from_and_show_as_their_text_form() {
        assert_eq!(parse_mac("02:42:c6:12:00:02"), Some([0x02, 0x42, 0xc6, 0x12, 0, 2]));
        assert_eq!(parse_mac("02:42:c6:12:00"), None);
        assert_eq!(parse_mac("02:42:c6:12:00:02:03"), None);
        assert_eq!(parse_mac("02:42:c6:12:00:zz"), None);
        assert_eq!(MacText([0x02, 0x42, 0xc6, 0x12, 0, 2]).to_string(), "02:42:c6:12:00:02");
    }

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    #[test]
    fn header_encodes_to_the_golden_bytes() {
        let mut out = [0xffu8; 15];
        let n = EthernetHeader { destination: DST, source: SRC, ethertype: ETHERTYPE_IPV4 }.encode(&mut out);
        assert_eq!(n, Ok(14));
        assert_eq!(out, [2, 0, 0, 0, 0, 0x0b, 2, 0, 0, 0, 0, 0x0a, 0x08, 0x00, 0xff]);
    }

    #[test]
    fn header_refuses_a_buffer_shorter_than_fourteen_bytes() {
        let h = EthernetHeader { destination: DST, source: SRC, ethertype: ETHERTYPE_IPV6 };
        assert_eq!(h.encode(&mut [0; 13]), Err(WireError::BufferTooSmall { needed: 14, available: 13 }));
    }

    #[test]
    fn parse_walks_an_802_1ad_and_an_802_1q_tag_to_the_ethertype() {
        let frame = [
            &DST[..],
            &SRC,
            &[0x88, 0xa8, 0x00, 0x64],
            &[0x81, 0x00, 0x00, 0x0a],
            &[0x86, 0xdd],
            &[0x60, 0, 0, 0],
        ]
        .concat();
        let f = EthernetFrame::parse(&frame).unwrap();
        assert_eq!((f.destination, f.source), (DST, SRC));
        assert_eq!((f.vlan_tags, f.ethertype, f.header_len), (2, ETHERTYPE_IPV6, 22));
        assert_eq!(f.payload, [0x60, 0, 0, 0]);
    }

    #[test]
    fn parse_reports_every_truncation_and_never_panics() {
        let frame = [&DST[..], &SRC, &[0x81, 0x00, 0x00, 0x0a], &[0x08, 0x00]].concat();
        assert!(EthernetFrame::parse(&frame).is_ok());
        for cut in 0..frame.len() {
            // Past the tag's TPID the header is known to be 18 bytes long.
            let needed = if cut < 14 { 14 } else { 18 };
            assert_eq!(
                EthernetFrame::parse(&frame[..cut]),
                Err(WireError::TruncatedHeader { header: "Ethernet", needed, available: cut }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn announced_length_reads_the_ipv4_total_length_of_a_cut_frame() {
        let mut frame = [0u8; 64];
        EthernetHeader { destination: DST, source: SRC, ethertype: ETHERTYPE_IPV4 }
            .encode(&mut frame)
            .unwrap();
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(EthernetFrame::parse(&frame).unwrap().announced_len(), Some(14 + 1500));
    }

    #[test]
    fn announced_length_counts_the_tag_and_the_ipv6_fixed_header() {
        let mut frame = [&DST[..], &SRC, &[0x81, 0x00, 0x00, 0x0a], &[0x86, 0xdd]].concat();
        frame.extend_from_slice(&[0x60, 0, 0, 0, 0x03, 0xe8]);
        assert_eq!(EthernetFrame::parse(&frame).unwrap().announced_len(), Some(18 + 40 + 1000));
    }

    #[test]
    fn announced_length_is_unknown_for_other_payloads_and_bad_ip_versions() {
        let frame = |ethertype: u16, first: u8| {
            let mut f = [0u8; 60];
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
            f[14] = first;
            f
        };
        assert_eq!(EthernetFrame::parse(&frame(0x0806, 0x45)).unwrap().announced_len(), None, "ARP");
        assert_eq!(EthernetFrame::parse(&frame(ETHERTYPE_IPV4, 0x65)).unwrap().announced_len(), None);
        assert_eq!(EthernetFrame::parse(&frame(ETHERTYPE_IPV6, 0x45)).unwrap().announced_len(), None);
        assert_eq!(EthernetFrame::parse(&frame(ETHERTYPE_IPV6, 0x60)[..19]).unwrap().announced_len(), None);
    }

    #[test]
    fn retagged_frame_has_the_tag_right_after_the_mac_addresses() {
        let untagged = [&DST[..], &SRC, &[0x08, 0x00], &[0x45; 6]].concat();
        let tag = [0x81, 0x00, 0x20, 0x0a];
        let r = Retagged::new(&untagged, &tag).unwrap();
        let golden = [&DST[..], &SRC, &tag, &[0x08, 0x00], &[0x45; 6]].concat();
        assert_eq!(r.parts().concat(), golden);
        let mut out = [0u8; 24];
        assert_eq!(r.encode(&mut out), Ok(24));
        assert_eq!(out[..], golden[..]);
        assert_eq!(r.len(), untagged.len() + 4);
        let back = EthernetFrame::parse(&out).unwrap();
        assert_eq!((back.vlan_tags, back.ethertype), (1, ETHERTYPE_IPV4));
    }

    #[test]
    fn retagging_needs_the_mac_addresses_and_room_for_the_whole_frame() {
        let tag = [0x81, 0x00, 0, 1];
        assert_eq!(Retagged::new(&[0; 11], &tag), None);
        let r = Retagged::new(&[0; 12], &tag).unwrap();
        assert_eq!(r.len(), 16);
        assert_eq!(r.encode(&mut [0; 15]), Err(WireError::BufferTooSmall { needed: 16, available: 15 }));
    }
}
