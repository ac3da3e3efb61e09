//! Cross-check with a decoder we did not write: frames built with this crate
//! are written to a pcap file and read back by tshark, field by field.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use bpc_wire::ethernet::{self, ETHERTYPE_IPV4};
use bpc_wire::{
    EthernetHeader, GreHeader, GreProfile, IPPROTO_GRE, Ipv4Header, PROTO_TEB, WorkloadKey, ipv4,
};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

struct Expected {
    key: u32,
    sequence: u32,
    src_port: u16,
    dst_port: u16,
    inner_src: Ipv4Addr,
}

/// Outer Ethernet/IPv4/GRE around an inner Ethernet/IPv4/TCP frame.
fn frame(gre: GreHeader, e: &Expected) -> Vec<u8> {
    let inner_builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(e.inner_src.octets(), [198, 18, 1, 1], 64)
        .tcp(e.src_port, e.dst_port, e.sequence.wrapping_add(1000), 64240);
    let payload = b"GET / HTTP/1.1\r\n\r\n";
    let mut inner = Vec::new();
    inner_builder.write(&mut inner, payload).unwrap();

    let mut gre_bytes = vec![0u8; gre.len() + inner.len()];
    gre.encode(&inner, &mut gre_bytes).unwrap();
    outer(&gre_bytes)
}

/// The outer Ethernet and IPv4 headers this crate builds (as the agent's TX
/// ring does) before `gre`: tshark checks them too.
fn outer(gre: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + gre.len()];
    let eth = EthernetHeader {
        destination: [2, 0, 0, 0, 0, 4],
        source: [2, 0, 0, 0, 0, 3],
        ethertype: ETHERTYPE_IPV4,
    };
    let at = eth.encode(&mut out).unwrap();
    let ip = Ipv4Header {
        source: Ipv4Addr::new(198, 18, 0, 1),
        destination: Ipv4Addr::new(198, 18, 0, 2),
        protocol: IPPROTO_GRE,
        ttl: 64,
        identification: 7,
        dont_fragment: true,
        payload_len: gre.len(),
    };
    let at = at + ip.encode(&mut out[at..]).unwrap();
    out[at..].copy_from_slice(gre);
    out
}

fn tshark_available() -> bool {
    Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn tshark_reads_every_gre_and_inner_field_we_encode() {
    assert!(tshark_available(), "tshark is required (scripts/install-deps.sh installs it)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gre.pcap");
    let key = WorkloadKey::from_workload("shop", "deployment", "checkout").get();
    let expected: Vec<Expected> = (0..50u32)
        .map(|i| Expected {
            key: if i % 2 == 0 { key } else { 0xffff_fff0 + (i % 16) },
            sequence: (u32::MAX - 20).wrapping_add(i), // crosses the wrap
            src_port: 40000 + i as u16,
            dst_port: 80 + (i % 3) as u16,
            inner_src: Ipv4Addr::new(198, 19, (i / 200) as u8, (i % 200) as u8 + 1),
        })
        .collect();
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = PcapWriter::new(file).unwrap();
        for (i, e) in expected.iter().enumerate() {
            let gre = GreHeader {
                protocol: PROTO_TEB,
                checksum: i % 5 == 0,
                key: Some(e.key),
                sequence: Some(e.sequence),
            };
            let data = frame(gre, e);
            writer
                .write_packet(&PcapPacket::new(Duration::from_millis(i as u64), data.len() as u32, &data))
                .unwrap();
        }
    }
    let out = Command::new("tshark")
        .args(["-r", path.to_str().unwrap(), "-T", "fields", "-E", "separator=;"])
        .args(["-e", "gre.key", "-e", "gre.sequence_number", "-e", "gre.proto", "-e", "tcp.srcport"])
        .args(["-e", "tcp.dstport", "-e", "ip.src", "-e", "gre.checksum.status", "-e", "_ws.expert"])
        .args(["-e", "ip.checksum.status", "-o", "ip.check_checksum:TRUE"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len(), "tshark output:\n{text}");
    for (i, (line, e)) in lines.iter().zip(&expected).enumerate() {
        let f: Vec<&str> = line.split(';').collect();
        let parse_num = |s: &str| {
            if let Some(hex) = s.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).unwrap()
            } else {
                s.parse::<u64>().unwrap()
            }
        };
        assert_eq!(parse_num(f[0]), u64::from(e.key), "key, frame {i}: {line}");
        assert_eq!(parse_num(f[1]), u64::from(e.sequence), "sequence, frame {i}: {line}");
        assert_eq!(parse_num(f[2]), 0x6558, "protocol, frame {i}: {line}");
        assert_eq!(f[3], e.src_port.to_string(), "tcp.srcport, frame {i}: {line}");
        assert_eq!(f[4], e.dst_port.to_string(), "tcp.dstport, frame {i}: {line}");
        assert_eq!(f[5], format!("198.18.0.1,{}", e.inner_src), "outer and inner ip.src, frame {i}: {line}");
        if i % 5 == 0 {
            // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
            assert_eq!(f[6], "1", "gre checksum status 'Good', frame {i}: {line}");
        }
        assert_eq!(f[8], "1,1", "outer and inner IPv4 checksums 'Good', frame {i}: {line}");
        for severity in ["Error/", "Warning/", "Malformed"] {
            assert!(!f[7].contains(severity), "tshark expert info {severity}, frame {i}: {line}");
        }
    }
}

#[test]
fn tshark_reads_the_agent_profiles_header_only_encoding() {
    // What the agent sends: a 12- or 8-byte header written on its own,
    // followed by the captured frame in a second iovec.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.pcap");
    let e = Expected {
        key: 7,
        sequence: 3,
        src_port: 1234,
        dst_port: 443,
        inner_src: Ipv4Addr::new(198, 18, 5, 5),
    };
    let inner =
        &frame(GreHeader { protocol: PROTO_TEB, checksum: false, key: None, sequence: None }, &e)[34 + 4..];
    {
        let mut writer = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        for (profile, key) in [(GreProfile::Standard, 0xabcd_0001u32), (GreProfile::Netis, 5)] {
            let mut head = [0u8; 16];
            let n = profile.write_header(&mut head, key, 9, bpc_wire::Direction::Outbound).unwrap();
            let data = outer(&[&head[..n], inner].concat());
            writer.write_packet(&PcapPacket::new(Duration::ZERO, data.len() as u32, &data)).unwrap();
        }
    }
    let out = Command::new("tshark")
        .args(["-r", path.to_str().unwrap(), "-T", "fields", "-E", "separator=;"])
        .args(["-e", "gre.key", "-e", "gre.sequence_number", "-e", "tcp.dstport"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["0xabcd0001;9;443", "0x20000005;;443"], "tshark output:\n{text}");
}
