//! Fuzzes GRE decoding (and VXLAN, ERSPAN II and III behind it): never panics, and whatever decodes re-encodes to the
//! same bytes (up to the Reserved1 field, which is reported, not kept). The
//! Ethernet and IPv4 views must not panic on the same bytes either.
#![no_main]

use bpc_wire::{Decapsulated, EthernetFrame, GreHeader, GrePacket, Ipv4Packet, SequenceTracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = GrePacket::parse(data) {
        assert_eq!(packet.header_len + packet.payload.len(), data.len());
        if packet.reserved1.unwrap_or(0) == 0 {
            let header = GreHeader {
                protocol: packet.protocol,
                checksum: packet.flags.checksum,
                key: packet.key,
                sequence: packet.sequence,
            };
            let mut out = vec![0u8; data.len()];
            let n = header.encode(packet.payload, &mut out).expect("fits: same length");
            assert_eq!(n, data.len());
            if !packet.flags.checksum {
                assert_eq!(&out[..], data);
            }
        }
    }
    if let Ok(frame) = EthernetFrame::parse(data) {
        assert_eq!(frame.header_len + frame.payload.len(), data.len());
        let _ = frame.announced_len();
    }
    if let Ok(ip) = Ipv4Packet::parse(data) {
        assert!(ip.header_len + ip.payload.len() <= data.len());
    }
    // Every format a receiver decodes: the frame is what follows the headers.
    if let Ok(d) = Decapsulated::from_gre(data) {
        assert!(d.frame.len() <= data.len());
        assert_eq!(d.frame.as_ptr_range().end, data.as_ptr_range().end);
    }
    if let Ok(d) = Decapsulated::from_vxlan(data) {
        assert_eq!(d.frame.len() + bpc_wire::vxlan::HEADER_LEN, data.len());
    }
    let _ = bpc_wire::vxlan::source_port(data);
    // The tracker must never panic on any sequence of numbers either.
    let mut tracker = SequenceTracker::new();
    for chunk in data.chunks_exact(4) {
        tracker.observe(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
});
