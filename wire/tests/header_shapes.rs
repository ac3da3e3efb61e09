//! Golden byte vectors for every combination of C, K and S, and every
//! malformed length of each.

use bpc_wire::{GreFlags, GreHeader, GrePacket, PROTO_IPV4, PROTO_IPV6, PROTO_TEB, WireError};

const PAYLOAD: &[u8] = &[0xde, 0xad, 0xbe, 0xef, 0x01];

/// (header, golden bytes of header + PAYLOAD). The checksums were computed
/// independently (a few lines of Python over the same bytes, RFC 1071).
fn golden() -> Vec<(GreHeader, Vec<u8>)> {
    let h = |checksum, key, sequence| GreHeader { protocol: PROTO_TEB, checksum, key, sequence };
    let p = PAYLOAD;
    let cat = |head: &[u8]| [head, p].concat();
    vec![
        (h(false, None, None), cat(&[0x00, 0x00, 0x65, 0x58])),
        (h(false, Some(0x0102_0304), None), cat(&[0x20, 0x00, 0x65, 0x58, 1, 2, 3, 4])),
        (h(false, None, Some(0xffff_fffe)), cat(&[0x10, 0x00, 0x65, 0x58, 0xff, 0xff, 0xff, 0xfe])),
        (h(false, Some(0x0102_0304), Some(7)), cat(&[0x30, 0x00, 0x65, 0x58, 1, 2, 3, 4, 0, 0, 0, 7])),
        (h(true, None, None), cat(&[0x80, 0x00, 0x65, 0x58, 0x7c, 0x09, 0, 0])),
        (h(true, Some(0x0102_0304), None), cat(&[0xa0, 0x00, 0x65, 0x58, 0x58, 0x03, 0, 0, 1, 2, 3, 4])),
        (h(true, None, Some(7)), cat(&[0x90, 0x00, 0x65, 0x58, 0x6c, 0x02, 0, 0, 0, 0, 0, 7])),
        (
            h(true, Some(0x0102_0304), Some(7)),
            cat(&[0xb0, 0x00, 0x65, 0x58, 0x47, 0xfc, 0, 0, 1, 2, 3, 4, 0, 0, 0, 7]),
        ),
    ]
}

#[test]
fn every_flag_combination_encodes_to_golden_bytes() {
    for (header, bytes) in golden() {
        let mut out = [0u8; 64];
        let n = header.encode(PAYLOAD, &mut out).unwrap();
        assert_eq!(&out[..n], &bytes[..], "{header:?}");
        assert_eq!(n, header.len() + PAYLOAD.len());
    }
}

#[test]
fn every_flag_combination_decodes_from_golden_bytes() {
    for (header, bytes) in golden() {
        let packet = GrePacket::parse(&bytes).unwrap();
        assert_eq!(packet.flags, header.flags());
        assert_eq!(packet.protocol, PROTO_TEB);
        assert_eq!(packet.key, header.key);
        assert_eq!(packet.sequence, header.sequence);
        assert_eq!(packet.checksum.is_some(), header.checksum);
        assert_eq!(packet.reserved1, header.checksum.then_some(0));
        assert_eq!(packet.header_len, header.len());
        assert_eq!(packet.payload, PAYLOAD);
    }
}

#[test]
fn encode_header_alone_matches_the_contiguous_encoding() {
    for (header, bytes) in golden() {
        let mut out = [0u8; 16];
        let n = header.encode_header(PAYLOAD, &mut out).unwrap();
        assert_eq!(&out[..n], &bytes[..n], "{header:?}");
    }
}

#[test]
fn every_truncated_length_is_rejected_with_the_needed_size() {
    for (header, bytes) in golden() {
        let needed = header.len();
        for cut in 0..needed {
            let err = GrePacket::parse(&bytes[..cut]).unwrap_err();
            let expected_needed = if cut < 4 { 4 } else { needed };
            assert_eq!(
                err,
                WireError::Truncated { needed: expected_needed, available: cut },
                "{header:?} cut at {cut}"
            );
        }
        // Header alone, empty payload: valid unless the checksum no longer matches.
        let packet = GrePacket::parse(&bytes[..needed]);
        if header.checksum {
            assert!(matches!(packet, Err(WireError::ChecksumMismatch { .. })), "{header:?}");
        } else {
            assert_eq!(packet.unwrap().payload, &[] as &[u8]);
        }
    }
}

#[test]
fn short_output_buffers_are_rejected_for_every_length() {
    for (header, _) in golden() {
        let total = header.len() + PAYLOAD.len();
        for size in 0..total {
            let mut out = vec![0u8; size];
            assert_eq!(
                header.encode(PAYLOAD, &mut out),
                Err(WireError::BufferTooSmall { needed: total, available: size })
            );
        }
        for size in 0..header.len() {
            let mut out = vec![0u8; size];
            assert_eq!(
                header.encode_header(PAYLOAD, &mut out),
                Err(WireError::BufferTooSmall { needed: header.len(), available: size })
            );
        }
    }
}

#[test]
fn nonzero_version_is_rejected() {
    for version in 1..=7u8 {
        let bytes = [0x30, version, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(GrePacket::parse(&bytes), Err(WireError::UnsupportedVersion(version)));
    }
}

#[test]
fn each_reserved_flag_bit_is_rejected() {
    for bit in [14u32, 11, 10, 9, 8, 7, 6, 5, 4, 3] {
        let word = (1u16 << bit) | 0x2000;
        let [hi, lo] = word.to_be_bytes();
        let bytes = [hi, lo, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(GrePacket::parse(&bytes), Err(WireError::ReservedBitsSet(1 << bit)), "bit {bit}");
    }
}

#[test]
fn corrupted_byte_fails_the_checksum() {
    for (header, bytes) in golden().into_iter().filter(|(h, _)| h.checksum) {
        for i in 0..bytes.len() {
            // Flipping the flags word changes the layout instead; only data bytes here.
            if i < 2 {
                continue;
            }
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(GrePacket::parse(&bad), Err(WireError::ChecksumMismatch { .. })),
                "{header:?} byte {i}"
            );
        }
    }
}

#[test]
fn ip_payload_protocols_decode() {
    for protocol in [PROTO_IPV4, PROTO_IPV6, 0x1234] {
        let bytes = [0x00, 0x00, (protocol >> 8) as u8, protocol as u8, 0x45];
        let packet = GrePacket::parse(&bytes).unwrap();
        assert_eq!(packet.protocol, protocol);
        assert_eq!(packet.flags, GreFlags::default());
        assert_eq!(packet.payload, &[0x45]);
    }
}
