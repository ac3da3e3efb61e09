//! The four formats against their goldens (`testdata/wire/encap.txt`, whole
//! packets: outer Ethernet, IPv4 or IPv6, the format's headers, an inner
//! HTTP request), against tshark (a decoder we did not write), and in
//! property tests. `BPC_REGEN=1 cargo test -p bpc-wire --test encap_formats`
//! rewrites the goldens (then review the diff).

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use bpc_wire::encap::MAX_HEADER_LEN;
use bpc_wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use bpc_wire::{
    Decapsulated, Direction, Encapsulation, EthernetHeader, FrameInfo, GreProfile, Ipv4Header, StreamKind,
    WorkloadKey, internet_checksum, ipv4,
};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use proptest::prelude::*;

const KEY: WorkloadKey = WorkloadKey(0x773f_9626);
const CAPTURED: Duration = Duration::new(1_767_225_600, 123_456_789);
const V6_SRC: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];

fn formats() -> [(&'static str, Encapsulation); 4] {
    [
        ("gre", Encapsulation::Gre { profile: GreProfile::Standard, key: KEY.0 }),
        ("vxlan", Encapsulation::Vxlan { vni: bpc_wire::vxlan::vni_of(KEY), port: 4789 }),
        ("erspan-ii", Encapsulation::ErspanII { session: bpc_wire::erspan::session_of(KEY), index: 2 }),
        (
            "erspan-iii",
            Encapsulation::ErspanIII { session: bpc_wire::erspan::session_of(KEY), port_index: 2 },
        ),
    ]
}

/// An inner Ethernet/IPv4/TCP frame carrying `GET /<i>`, from the pod (outbound).
fn inner(i: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 1, 2], [198, 18, 1, 1], 64)
        .tcp(40000 + i as u16, 8080, 1000 + i, 64240)
        .write(&mut out, format!("GET /{i} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes())
        .unwrap();
    out
}

/// The whole packet on the collector's link: Ethernet, IPv4 (ours) or IPv6, header, frame.
fn packet(e: &Encapsulation, frame: &[u8], sequence: u32, v6: bool) -> Vec<u8> {
    let info = FrameInfo {
        head: frame,
        len: frame.len(),
        sequence,
        direction: Direction::Outbound,
        vlan: None,
        captured: CAPTURED + Duration::from_micros(u64::from(sequence)),
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = e.write_header(&mut head, &info).unwrap();
    let mut payload = [&head[..n], frame].concat();
    let eth =
        |ethertype| EthernetHeader { destination: [2, 0, 0, 0, 0, 4], source: [2, 0, 0, 0, 0, 3], ethertype };
    let mut out = vec![0u8; ethernet::HEADER_LEN];
    if v6 {
        if e.ip_protocol() == 17 {
            // What the agent has the kernel do (IPV6_CHECKSUM): UDP's checksum over the pseudo-header.
            let len = (payload.len() as u32).to_be_bytes();
            let sum = internet_checksum(&[&V6_SRC, &V6_DST, &len, &[0, 0, 0, 17], &payload]);
            payload[6..8].copy_from_slice(&if sum == 0 { 0xffff } else { sum }.to_be_bytes());
        }
        eth(ETHERTYPE_IPV6).encode(&mut out).unwrap();
        let ip = etherparse::Ipv6Header {
            payload_length: payload.len() as u16,
            next_header: etherparse::IpNumber(e.ip_protocol()),
            hop_limit: 64,
            source: V6_SRC,
            destination: V6_DST,
            ..Default::default()
        };
        ip.write(&mut out).unwrap();
    } else {
        eth(ETHERTYPE_IPV4).encode(&mut out).unwrap();
        let ip = Ipv4Header {
            source: Ipv4Addr::new(198, 18, 2, 1),
            destination: Ipv4Addr::new(198, 18, 2, 2),
            protocol: e.ip_protocol(),
            ttl: 64,
            identification: sequence as u16,
            dont_fragment: false,
            payload_len: payload.len(),
        };
        let mut h = [0u8; ipv4::HEADER_LEN];
        ip.encode(&mut h).unwrap();
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(&payload);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/wire/encap.txt")
}

#[test]
fn every_format_over_ipv4_and_ipv6_encodes_to_its_golden_packet() {
    let mut text = String::from("# name outer-ip hex: whole packets, see wire/tests/encap_formats.rs\n");
    for (name, e) in formats() {
        for v6 in [false, true] {
            let p = packet(&e, &inner(0), 7, v6);
            text += &format!("{name} {} {}\n", if v6 { "ipv6" } else { "ipv4" }, hex(&p));
        }
    }
    if std::env::var_os("BPC_REGEN").is_some() {
        std::fs::write(golden_path(), &text).unwrap();
    }
    let golden =
        std::fs::read_to_string(golden_path()).expect("testdata/wire/encap.txt (BPC_REGEN=1 writes it)");
    for (want, got) in golden.lines().zip(text.lines()) {
        assert_eq!(got, want, "golden drifted (BPC_REGEN=1 rewrites it; review the diff)");
    }
    assert_eq!(golden.lines().count(), text.lines().count());
}

#[test]
fn every_golden_packet_decodes_to_the_key_derived_id_sequence_and_the_inner_frame() {
    for (_, e) in formats() {
        for v6 in [false, true] {
            let p = packet(&e, &inner(0), 7, v6);
            let after_ip = &p[ethernet::HEADER_LEN + if v6 { 40 } else { 20 }..];
            let d = match e {
                Encapsulation::Vxlan { .. } => Decapsulated::from_vxlan(&after_ip[8..]).unwrap(),
                _ => Decapsulated::from_gre(after_ip).unwrap(),
            };
            let expected_id = e.encap().stream_id(KEY, GreProfile::Standard);
            assert_eq!((d.id, d.frame), (expected_id, &inner(0)[..]), "{e:?}");
            assert_eq!(d.sequence, e.encap().has_sequence(GreProfile::Standard).then_some(7), "{e:?}");
            if d.kind == StreamKind::ErspanIII {
                assert_eq!(d.captured, Some(CAPTURED + Duration::from_micros(7)));
                assert_eq!(d.direction, Direction::Outbound);
            }
        }
    }
}

fn tshark(pcap: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        pcap.to_str().unwrap(),
        "-d",
        "tcp.port==8080,http",
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    cmd.args(["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is required (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(';').map(str::to_owned).collect())
        .collect()
}

#[test]
fn tshark_decodes_every_format_over_ipv4_and_ipv6_down_to_the_http_request() {
    let dir = tempfile::tempdir().unwrap();
    for (name, e) in formats() {
        for v6 in [false, true] {
            let path = dir.path().join(format!("{name}-{v6}.pcap"));
            let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
            for i in 0..20u32 {
                let p = packet(&e, &inner(i), (u32::MAX - 10).wrapping_add(i), v6);
                w.write_packet(&PcapPacket::new(Duration::from_millis(i.into()), p.len() as u32, &p))
                    .unwrap();
            }
            drop(w);
            let rows = tshark(
                &path,
                &[
                    "http.request.uri",
                    "tcp.dstport",
                    "vxlan.vni",
                    "udp.dstport",
                    "udp.checksum.status",
                    "erspan.spanid",
                    "gre.sequence_number",
                    "erspan.timestamp",
                    "erspan.pid3.timestamp",
                    "erspan.direction",
                    "erspan.gra",
                    "_ws.expert",
                    "ip.checksum.status",
                ],
            );
            assert_eq!(rows.len(), 20, "{name} v6={v6}: {rows:?}");
            let session = bpc_wire::erspan::session_of(KEY).to_string();
            for (i, f) in rows.iter().enumerate() {
                let i = i as u32;
                let ctx = format!("{name} v6={v6} packet {i}: {f:?}");
                assert_eq!(f[0], format!("/{i}"), "{ctx}");
                assert_eq!(f[1], "8080", "{ctx}");
                for severity in ["Error/", "Warning/", "Malformed"] {
                    assert!(!f[11].contains(severity), "expert info {severity}: {ctx}");
                }
                let ip_ok = if v6 { "1" } else { "1,1" };
                assert_eq!(f[12], ip_ok, "outer (and inner) IPv4 checksums good: {ctx}");
                match e {
                    Encapsulation::Vxlan { vni, .. } => {
                        assert_eq!(
                            (f[2].as_str(), f[3].as_str()),
                            (vni.to_string().as_str(), "4789"),
                            "{ctx}"
                        );
                        if v6 {
                            assert_eq!(f[4], "1", "UDP checksum good: {ctx}");
                        }
                    }
                    Encapsulation::ErspanII { .. } | Encapsulation::ErspanIII { .. } => {
                        assert_eq!(f[5], session, "{ctx}");
                        assert_eq!(f[6], (u32::MAX - 10).wrapping_add(i).to_string(), "{ctx}");
                    }
                    Encapsulation::Gre { .. } => {
                        assert_eq!(f[6], (u32::MAX - 10).wrapping_add(i).to_string())
                    }
                }
                if let Encapsulation::ErspanIII { .. } = e {
                    let t = CAPTURED + Duration::from_micros(u64::from((u32::MAX - 10).wrapping_add(i)));
                    assert_eq!(f[7], t.subsec_nanos().to_string(), "{ctx}");
                    assert_eq!(f[8], (t.as_secs() as u32).to_string(), "{ctx}");
                    assert_eq!((f[9].as_str(), f[10].as_str()), ("1", "2"), "egress, IEEE 1588: {ctx}");
                }
            }
        }
    }
}

fn encapsulation() -> impl Strategy<Value = Encapsulation> {
    prop_oneof![
        (any::<bool>(), any::<u32>()).prop_map(|(netis, key)| Encapsulation::Gre {
            profile: if netis { GreProfile::Netis } else { GreProfile::Standard },
            key: if netis { key & 0x0fff_ffff } else { key },
        }),
        (0..=0x00ff_ffffu32, any::<u16>()).prop_map(|(vni, port)| Encapsulation::Vxlan { vni, port }),
        (0..=0x3ffu16, 0..=0xf_ffffu32)
            .prop_map(|(session, index)| Encapsulation::ErspanII { session, index }),
        (0..=0x3ffu16, 0..=0x3fffu16)
            .prop_map(|(session, port_index)| Encapsulation::ErspanIII { session, port_index }),
    ]
}

proptest! {
    #[test]
    fn every_encapsulation_round_trips_id_sequence_vlan_and_frame(
        e in encapsulation(),
        frame in proptest::collection::vec(any::<u8>(), 14..200),
        sequence in any::<u32>(),
        tci in proptest::option::of(any::<u16>()),
        secs in any::<u32>(),
        nanos in 0..1_000_000_000u32,
    ) {
        let vlan = tci.map(|t| { let b = t.to_be_bytes(); [0x81, 0, b[0], b[1]] });
        let captured = Duration::new(u64::from(secs), nanos);
        let info = FrameInfo { head: &frame, len: frame.len(), sequence, direction: Direction::Outbound, vlan, captured };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = e.write_header(&mut head, &info).unwrap();
        prop_assert_eq!(n, e.header_len());
        let packet = [&head[..n], &frame[..]].concat();
        let d = match e {
            Encapsulation::Vxlan { .. } => Decapsulated::from_vxlan(&packet[8..]).unwrap(),
            _ => Decapsulated::from_gre(&packet).unwrap(),
        };
        prop_assert_eq!(d.frame, &frame[..]);
        match e {
            Encapsulation::Gre { key, .. } => prop_assert_eq!(d.id, key),
            Encapsulation::Vxlan { vni, .. } => prop_assert_eq!((d.id, d.sequence), (vni, None)),
            Encapsulation::ErspanII { session, .. } => {
                prop_assert_eq!((d.id, d.sequence), (u32::from(session), Some(sequence)));
                let (h, _) = bpc_wire::ErspanII::parse(&packet[8..]).unwrap();
                prop_assert_eq!(h.vlan.vlan, tci.map_or(0, |t| t & 0xfff));
            }
            Encapsulation::ErspanIII { session, .. } => {
                prop_assert_eq!((d.id, d.sequence, d.captured), (u32::from(session), Some(sequence), Some(captured)));
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(d) = Decapsulated::from_gre(&bytes) {
            prop_assert!(d.frame.len() <= bytes.len());
        }
        if let Ok(d) = Decapsulated::from_vxlan(&bytes) {
            prop_assert_eq!(d.frame.len() + 8, bytes.len());
        }
        let _ = bpc_wire::ErspanIII::parse(&bytes);
        let _ = bpc_wire::vxlan::source_port(&bytes);
    }
}
