//! The capture fixtures in `testdata/pcaps/`: built here with etherparse so
//! they are reproducible. `BPC_REGEN=1 cargo test -p bpc-receiver --test fixtures`
//! rewrites them; otherwise the test proves the committed files match.
//!
//! Also the receiver's output goldens, `testdata/pcapng/receiver.pcap{,ng}`:
//! what `--write` makes of fixed frames at fixed times (regenerated the same
//! way), read back by tshark at exactly those times.

use bpc_receiver::map::SharedMap;
use bpc_receiver::pcap_out::PcapOut;
use bpc_receiver::receiver::FrameSink;
use etherparse::{PacketBuilder, TcpOptionElement};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

const MAC_A: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x01, 0x02];
const MAC_B: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x01, 0x03];
const IP_A: [u8; 4] = [198, 18, 1, 2];
const IP_B: [u8; 4] = [198, 18, 1, 3];

fn tcp(fwd: bool, seq: u32, ack: u32, flags: &str, payload: &[u8], opts: bool) -> Vec<u8> {
    let (sm, dm, si, di, sp, dp) =
        if fwd { (MAC_A, MAC_B, IP_A, IP_B, 43512, 80) } else { (MAC_B, MAC_A, IP_B, IP_A, 80, 43512) };
    let mut b = PacketBuilder::ethernet2(sm, dm).ipv4(si, di, 64).tcp(sp, dp, seq, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('P') {
        b = b.psh();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if opts {
        b = b
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(123456, 0),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Name and frames of every fixture.
pub fn fixtures() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let req = b"GET /api/orders HTTP/1.1\r\nHost: checkout.shop.svc\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"orders\":[1,2,3],\"ok\":true}";
    let http = vec![
        tcp(true, 1000, 0, "S", b"", true),
        tcp(false, 5000, 1001, "SA", b"", true),
        tcp(true, 1001, 5001, "A", b"", false),
        tcp(true, 1001, 5001, "PA", req, false),
        tcp(false, 5001, 1001 + req.len() as u32, "PA", resp, false),
        tcp(true, 1001 + req.len() as u32, 5001 + resp.len() as u32, "FA", b"", false),
    ];
    let handshake = http[..3].to_vec();
    // DNS query and answer for checkout.shop.svc.cluster.local A.
    let qname: Vec<u8> = ["checkout", "shop", "svc", "cluster", "local"]
        .iter()
        .flat_map(|l| std::iter::once(l.len() as u8).chain(l.bytes()))
        .chain([0])
        .collect();
    let mut query = vec![0x1a, 0x2b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend(&qname);
    query.extend([0, 1, 0, 1]);
    let mut answer = query.clone();
    answer[2] = 0x81;
    answer[3] = 0x80;
    answer[7] = 1;
    answer.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 198, 18, 1, 3]);
    let dns = vec![
        udp(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(IP_A, [198, 18, 0, 10], 64).udp(40001, 53), &query),
        udp(PacketBuilder::ethernet2(MAC_B, MAC_A).ipv4([198, 18, 0, 10], IP_A, 64).udp(53, 40001), &answer),
    ];
    let a6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let b6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    let ipv6 = vec![
        udp(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(a6, b6, 64).udp(40002, 53), &query),
        udp(PacketBuilder::ethernet2(MAC_B, MAC_A).ipv6(b6, a6, 64).udp(53, 40002), &answer),
        udp(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(a6, b6, 64).tcp(43000, 443, 1, 64800).syn(), b""),
    ];
    // One UDP exchange on VLAN 100, each way.
    let on_vlan_100 = |(src_mac, src), (dst_mac, dst), (sport, dport), payload: &[u8]| {
        let b = PacketBuilder::ethernet2(src_mac, dst_mac).single_vlan(100.try_into().unwrap());
        udp(b.ipv4(src, dst, 64).udp(sport, dport), payload)
    };
    let vlan = vec![
        on_vlan_100((MAC_A, IP_A), (MAC_B, IP_B), (5000, 5001), b"vlan tagged payload"),
        on_vlan_100((MAC_B, IP_B), (MAC_A, IP_A), (5001, 5000), b"vlan tagged reply"),
    ];
    vec![
        ("http.pcap", http),
        ("dns.pcap", dns),
        ("tcp-handshake.pcap", handshake),
        ("ipv6.pcap", ipv6),
        ("vlan.pcap", vlan),
    ]
}

fn udp<T>(b: etherparse::PacketBuilderStep<T>, payload: &[u8]) -> Vec<u8>
where
    etherparse::PacketBuilderStep<T>: Writable,
{
    b.write_to(payload)
}

/// Lets the helper above take any final builder step.
pub trait Writable {
    /// Serialises.
    fn write_to(self, payload: &[u8]) -> Vec<u8>;
}
impl Writable for etherparse::PacketBuilderStep<etherparse::UdpHeader> {
    fn write_to(self, payload: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        self.write(&mut o, payload).unwrap();
        o
    }
}
impl Writable for etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    fn write_to(self, payload: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        self.write(&mut o, payload).unwrap();
        o
    }
}

/// The pcap bytes of a fixture (fixed timestamps).
pub fn pcap_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = PcapWriter::with_header(Vec::new(), PcapHeader::default()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_764_000_000) + Duration::from_micros(1500 * i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).unwrap();
    }
    w.into_writer()
}

#[test]
fn committed_pcap_fixtures_match_their_generator() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pcaps");
    for (name, frames) in fixtures() {
        let bytes = pcap_bytes(&frames);
        let path = format!("{dir}/{name}");
        if std::env::var_os("BPC_REGEN").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{path} differs from its generator");
        let out = std::process::Command::new("tshark").args(["-r", &path]).output().unwrap();
        assert!(out.status.success(), "tshark rejects {path}");
    }
}

/// Compares `got` with the committed golden `name` in `testdata/pcapng`
/// (rewriting it first with `BPC_REGEN=1`).
fn matches_golden(name: &str, got: &[u8]) {
    let path = format!("{}/../testdata/pcapng/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("BPC_REGEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (BPC_REGEN=1 writes it)"));
    assert!(
        want == got,
        "{path} differs from what the writer makes now (BPC_REGEN=1 rewrites it; review why)"
    );
}

/// `frame.time_epoch` of every frame in `file`, as tshark prints it.
fn tshark_epochs(file: &Path) -> Vec<String> {
    bpc_netns::tshark(file, &["-T", "fields", "-e", "frame.time_epoch"]).lines().map(str::to_owned).collect()
}

#[test]
fn the_receivers_pcap_and_pcapng_match_their_goldens_and_tshark_reads_the_times_written() {
    // Two keys (two pcapng interfaces), nanoseconds that a microsecond
    // file must cut and a nanosecond one keep.
    let fixtures = fixtures();
    let frames: Vec<(u32, &Vec<u8>)> = (fixtures[0].1.iter().take(3).map(|f| (0x1234_abcd, f)))
        .chain(fixtures[1].1.iter().map(|f| (0x10, f)))
        .collect();
    let time = |i: usize| Duration::new(1_764_000_000, 123_456_789) + Duration::from_micros(1500) * i as u32;
    let dir = tempfile::tempdir().unwrap();
    for (name, nanoseconds) in [("receiver.pcapng", true), ("receiver.pcap", false)] {
        let path = dir.path().join(name);
        let mut out = PcapOut::create(path.to_str().unwrap(), None, SharedMap::default()).unwrap();
        for (i, (key, frame)) in frames.iter().enumerate() {
            out.frame(UNIX_EPOCH + time(i), *key, frame).unwrap();
        }
        out.finish().unwrap();
        matches_golden(name, &std::fs::read(&path).unwrap());
        let want: Vec<String> = (0..frames.len())
            .map(|i| {
                let t = time(i);
                let nanos = if nanoseconds { t.subsec_nanos() } else { t.subsec_micros() * 1000 };
                format!("{}.{nanos:09}", t.as_secs())
            })
            .collect();
        assert_eq!(tshark_epochs(&path), want, "{name}: the times tshark reads");
    }
}
