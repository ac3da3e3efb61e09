//! Fuzzes GRE decoding: never panics, and whatever decodes re-encodes to the
//! same bytes (up to the Reserved1 field, which is reported, not kept). The
//! Ethernet and IPv4 views must not panic on the same bytes either.
#![no_main]

use bpc_wire::{EthernetFrame, GreHeader, GrePacket, Ipv4Packet, SequenceTracker};
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
    // The tracker must never panic on any sequence of numbers either.
    let mut tracker = SequenceTracker::new();
    for chunk in data.chunks_exact(4) {
        tracker.observe(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
});
