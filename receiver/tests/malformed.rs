//! 100,000 random and mutated datagrams do not stop the receiver: it keeps
//! counting valid packets exactly and counts the rest by reason.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bpc_netns::{Netns, poll};
use bpc_receiver::receiver::{Receiver, ReceiverConfig};
use bpc_wire::{Direction, GreProfile};
use socket2::{Domain, Protocol, Socket, Type};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn valid(seq: u32, key: u32) -> Vec<u8> {
    let mut b = vec![0u8; 12 + 60];
    let h = GreProfile::Standard.write_header(&mut b, key, seq, Direction::Unknown).unwrap();
    b[h + 12] = 0x08; // IPv4 ethertype; the rest zero.
    b
}

#[test]
fn hundred_thousand_malformed_datagrams_never_stop_the_receiver() {
    let ns = Netns::new("sim", "mf");
    // Both sockets are created on a thread moved into the namespace; they stay there.
    let handle = ns.spawn(move || {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let rx = Receiver::start(ReceiverConfig {
            listen: lo,
            map: Default::default(),
            paths: false,
            frame_sink: None,
        })
        .unwrap();
        let tx = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
        tx.connect(&SocketAddr::new(lo, 0).into()).unwrap();
        let key = 0x4242_4242;
        let mut seq = 0u32;
        for _ in 0..100 {
            tx.send(&valid(seq, key)).unwrap();
            seq += 1;
        }
        let r = poll(Duration::from_secs(10), || rx.snapshot(), |r| r.totals.packets >= 100);
        assert_eq!(r.totals.packets, 100);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut sent_bad = 0u64;
        for i in 0..100_000u64 {
            let kind = i % 5;
            let mut d = match kind {
                // Pure garbage of random length (empty included).
                0 => (0..(rng.next() % 200) as usize).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
                // Version 1 (PPTP) header.
                1 => {
                    let mut v = valid(0, 0x99);
                    v[1] |= 0x01;
                    v
                }
                // Truncated: the header claims K+S but stops short.
                2 => valid(0, 0x99)[..(rng.next() % 12) as usize].to_vec(),
                // Wrong protocol type (IPv4 instead of transparent Ethernet).
                3 => {
                    let mut v = valid(0, 0x99);
                    v[2..4].copy_from_slice(&[0x08, 0x00]);
                    v
                }
                // Valid header, frame shorter than an Ethernet header.
                _ => valid(0, 0x99)[..12 + (rng.next() % 14) as usize].to_vec(),
            };
            if kind == 0 && !d.is_empty() {
                d[0] |= 0x01; // bit set in the reserved0 area: never valid
            }
            tx.send(&d).unwrap();
            sent_bad += 1;
            if i % 2000 == 0 {
                // Interleave valid packets: counting must continue exactly throughout.
                tx.send(&valid(seq, key)).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for _ in 0..100 {
            tx.send(&valid(seq, key)).unwrap();
            seq += 1;
        }
        poll(
            Duration::from_secs(10),
            || rx.snapshot(),
            |r| r.totals.packets >= seq as u64 && r.totals.malformed >= sent_bad,
        );
        (rx.stop(), seq, sent_bad)
    });
    let (report, seq, sent_bad) = handle.join().unwrap();
    assert_eq!(report.streams.len(), 1, "{:?}", report.streams);
    let s = &report.streams[0];
    assert_eq!((s.key.as_str(), s.packets, s.lost, s.duplicated), ("0x42424242", seq as u64, 0, 0));
    assert_eq!(report.totals.malformed, sent_bad, "{:?}", report.malformed);
    assert!(report.malformed["unsupported_version"] >= 20_000);
    assert_eq!(report.malformed["not_ethernet"], 20_000);
    assert_eq!(report.malformed["short_frame"], 20_000);
    assert!(report.malformed["truncated"] >= 20_000);
}
