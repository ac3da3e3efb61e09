//! Fuzzes GRE decoding: never panics, and whatever decodes re-encodes to the
//! same bytes (up to the Reserved1 field, which is reported, not kept).
#![no_main]

use bpc_wire::{GreHeader, GrePacket, SequenceTracker};
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
    // The tracker must never panic on any sequence of numbers either.
    let mut tracker = SequenceTracker::new();
    for chunk in data.chunks_exact(4) {
        tracker.observe(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
});
