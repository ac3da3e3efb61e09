//! Property tests: encode/decode round trip, decode on arbitrary input (GRE,
//! Ethernet, IPv4), VLAN re-tagging, and the sequence tracker against a
//! simple model.

use std::collections::BTreeSet;

use bpc_wire::{EthernetFrame, GreHeader, GrePacket, Ipv4Packet, Retagged, SequenceTracker, WireError};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = GreHeader> {
    (any::<u16>(), any::<bool>(), any::<Option<u32>>(), any::<Option<u32>>())
        .prop_map(|(protocol, checksum, key, sequence)| GreHeader { protocol, checksum, key, sequence })
}

proptest! {
    #[test]
    fn encoded_packets_decode_to_the_same_fields(h in header(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut out = vec![0u8; h.len() + payload.len()];
        let n = h.encode(&payload, &mut out).unwrap();
        let p = GrePacket::parse(&out[..n]).unwrap();
        prop_assert_eq!(p.protocol, h.protocol);
        prop_assert_eq!(p.key, h.key);
        prop_assert_eq!(p.sequence, h.sequence);
        prop_assert_eq!(p.flags, h.flags());
        prop_assert_eq!(p.checksum.is_some(), h.checksum);
        prop_assert_eq!(p.payload, &payload[..]);
    }

    #[test]
    fn decode_never_panics_and_only_accepts_consistent_lengths(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        match GrePacket::parse(&bytes) {
            Ok(p) => {
                prop_assert_eq!(p.header_len, p.flags.header_len());
                prop_assert_eq!(p.header_len + p.payload.len(), bytes.len());
            }
            Err(WireError::Truncated { needed, available }) => {
                prop_assert!(available < needed);
                prop_assert_eq!(available, bytes.len());
            }
            Err(WireError::UnsupportedVersion(v)) => prop_assert!(v != 0 && v < 8),
            Err(WireError::ReservedBitsSet(bits)) => prop_assert!(bits != 0),
            Err(WireError::ChecksumMismatch { .. }) => prop_assert!(bytes[0] & 0x80 != 0),
            Err(
                e @ (WireError::BufferTooSmall { .. }
                | WireError::TruncatedHeader { .. }
                | WireError::NotIpv4(_)
                | WireError::Ipv4HeaderLength(_)
                | WireError::NotIpv6(_)
                | WireError::TcpHeaderLength(_)
                | WireError::TooLong { .. }
                | WireError::VxlanNoVni(_)
                | WireError::ErspanVersion { .. }
                | WireError::NotEthernet(_)),
            ) => prop_assert!(false, "GRE decode returned {e}"),
        }
    }

    #[test]
    fn ethernet_and_ipv4_views_never_panic_and_stay_within_their_input(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        if let Ok(f) = EthernetFrame::parse(&bytes) {
            prop_assert_eq!(f.header_len, 14 + 4 * f.vlan_tags);
            prop_assert_eq!(f.header_len + f.payload.len(), bytes.len());
            if let Some(len) = f.announced_len() {
                prop_assert!(len >= f.header_len);
            }
        }
        if let Ok(p) = Ipv4Packet::parse(&bytes) {
            prop_assert!(p.header_len >= 20 && p.header_len + p.payload.len() <= bytes.len());
        }
    }

    #[test]
    fn a_retagged_frame_parses_with_one_more_tag_and_the_same_payload(
        tci in any::<u16>(), inner_tags in 0usize..3, payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut untagged = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for _ in 0..inner_tags {
            untagged.extend_from_slice(&[0x81, 0x00, 0, 7]);
        }
        untagged.extend_from_slice(&[0x08, 0x00]);
        untagged.extend_from_slice(&payload);
        let mut tag = [0x81, 0x00, 0, 0];
        tag[2..].copy_from_slice(&tci.to_be_bytes());
        let tagged = Retagged::new(&untagged, &tag).unwrap();
        let mut out = vec![0u8; tagged.len()];
        tagged.encode(&mut out).unwrap();
        prop_assert_eq!(&tagged.parts().concat(), &out);
        let (before, after) = (EthernetFrame::parse(&untagged).unwrap(), EthernetFrame::parse(&out).unwrap());
        prop_assert_eq!(after.vlan_tags, before.vlan_tags + 1);
        prop_assert_eq!((after.ethertype, after.payload), (before.ethertype, before.payload));
    }

    #[test]
    fn single_bit_flip_of_a_checksummed_packet_is_never_silently_accepted_as_the_original(
        h in header(), payload in proptest::collection::vec(any::<u8>(), 1..100), bit in 0usize..800,
    ) {
        let h = GreHeader { checksum: true, ..h };
        let mut out = vec![0u8; h.len() + payload.len()];
        let n = h.encode(&payload, &mut out).unwrap();
        let bit = bit % (n * 8);
        out[bit / 8] ^= 1 << (bit % 8);
        if let Ok(p) = GrePacket::parse(&out[..n]) {
            // Only a flip in the flags word that turns C off can decode.
            prop_assert!(p.checksum.is_none());
        }
    }
}

/// A stream as the test sends it: sequence numbers 0..n, where each may be
/// dropped, duplicated, or delayed by a few places (never 0, whose repetition
/// means a restart).
fn mangled_stream() -> impl Strategy<Value = Vec<u32>> {
    (2u32..400, proptest::collection::vec((0u8..10, 0usize..8), 400)).prop_map(|(n, ops)| {
        let mut out = vec![0u32];
        for s in 1..n {
            let (op, _) = ops[s as usize];
            match op {
                0 => {}                  // dropped
                1 => out.extend([s, s]), // duplicated
                _ => out.push(s),
            }
        }
        // Delay: move some packets back by up to 7 places (not before 0).
        for i in 1..out.len() {
            let shift = ops[i % ops.len()].1;
            if shift > 0 && i + shift < out.len() && ops[(i * 7) % ops.len()].0 == 9 {
                let v = out.remove(i);
                out.insert(i + shift, v);
            }
        }
        out
    })
}

proptest! {
    #[test]
    fn tracker_counts_match_a_set_based_model(seqs in mangled_stream()) {
        let mut tracker = SequenceTracker::new();
        for &s in &seqs {
            tracker.observe(s);
        }
        let c = tracker.counters();
        // Model: what was seen, what was the highest, what arrived behind a higher number.
        let distinct: BTreeSet<u32> = seqs.iter().copied().collect();
        let max = *distinct.iter().max().unwrap();
        let mut seen = BTreeSet::new();
        let mut highest = 0u32;
        let mut reordered = 0u64;
        for &s in &seqs {
            if seen.insert(s) && s < highest {
                reordered += 1;
            }
            highest = highest.max(s);
        }
        prop_assert_eq!(c.received, seqs.len() as u64);
        prop_assert_eq!(c.duplicated, (seqs.len() - distinct.len()) as u64);
        prop_assert_eq!(c.lost, u64::from(max) + 1 - distinct.len() as u64);
        prop_assert_eq!(c.reordered, reordered);
        prop_assert_eq!(c.restarts, 0);
    }

    #[test]
    fn tracker_counts_are_the_same_across_the_wrap(seqs in mangled_stream(), offset in any::<u32>()) {
        // The same stream shifted anywhere in the 32-bit space, wrap included,
        // but starting at 0 of a real agent: only the numbering changes.
        let mut plain = SequenceTracker::new();
        let mut shifted = SequenceTracker::new();
        let offset = offset | 1; // keep shifted numbers away from the restart marker 0 at start
        for &s in &seqs {
            plain.observe(s);
            let t = s.wrapping_add(offset);
            if t == 0 { return Ok(()); } // a shifted 0 mid-stream is a restart marker by design
            shifted.observe(t);
        }
        prop_assert_eq!(plain.counters(), shifted.counters());
    }
}
