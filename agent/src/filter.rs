//! The capture filter: the user's tcpdump expression plus the exclusion of
//! the agent's own traffic, compiled by libpcap into a classic BPF program
//! the kernel runs on the capture socket.

use std::net::IpAddr;

use pcap::{Capture, Linktype};

use crate::config::CAPTURE_SNAPLEN;
use crate::error::{Error, Result};

/// BPF `ret #k` instruction code.
const BPF_RET_K: u16 = 0x06;

/// What the agent's own packets to a collector are: GRE (GRE and ERSPAN),
/// or UDP to the VXLAN port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnTraffic {
    /// IP protocol 47.
    Gre,
    /// UDP to this destination port.
    Udp {
        /// The collectors' VXLAN port.
        port: u16,
    },
}

/// Builds the effective filter: `(<user>) and not (<own GRE>) and not (<metrics>)`.
///
/// The own-GRE clause is per collector address: `ip proto 47 and dst host X`
/// (IPv4 fragments keep protocol 47, so fragmented GRE is excluded too) or
/// `ip6 dst host X and (ip6 proto 47 or ip6 proto 44)` (IPv6 fragments carry
/// a Fragment header, 44, before GRE). Without that, every GRE packet the
/// agent sends would be captured and sent again. ICMP errors that quote one
/// of our GRE packets (protocol unreachable when nothing listens at the
/// collector, time exceeded, ...) are excluded as well: sending them would
/// provoke more of them, a feedback loop.
///
/// VXLAN's own packets are UDP to the collector's VXLAN port, and, for
/// `--oversize fragment`, the non-first fragments of UDP to the collector
/// (they carry no port); ICMP errors quoting UDP to that address and port
/// are excluded likewise.
pub fn compose(user: Option<&str>, collectors: &[IpAddr], own: OwnTraffic, metrics_port: u16) -> String {
    let mut parts = Vec::with_capacity(collectors.len() + 2);
    if let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) {
        parts.push(format!("({user})"));
    }
    for ip in collectors {
        parts.push(match (ip, own) {
            (IpAddr::V4(v4), OwnTraffic::Udp { port }) => format!(
                "not (dst host {v4} and (udp dst port {port} or (ip proto 17 and ip[6:2] & 0x1fff != 0))) \
                 and not (icmp and (icmp[0] == 3 or icmp[0] == 11 or icmp[0] == 12) and icmp[17] == 17 \
                 and icmp[24:4] == {} and icmp[30:2] == {port})",
                u32::from(*v4)
            ),
            (IpAddr::V6(v6), OwnTraffic::Udp { port }) => format!(
                "not (ip6 dst host {v6} and (udp dst port {port} or ip6 proto 44)) \
                 and not (icmp6 and ip6[40] >= 1 and ip6[40] <= 3 and ip6[54] == 17 and ip6[90:2] == {port})"
            ),
            (IpAddr::V4(v4), OwnTraffic::Gre) => format!(
                "not (ip proto 47 and dst host {v4}) and not (icmp and (icmp[0] == 3 or icmp[0] == 11 or icmp[0] == 12) and icmp[17] == 47 and icmp[24:4] == {})",
                u32::from(*v4)
            ),
            (IpAddr::V6(v6), OwnTraffic::Gre) => format!(
                "not (ip6 dst host {v6} and (ip6 proto 47 or ip6 proto 44)) \
                 and not (icmp6 and ip6[40] >= 1 and ip6[40] <= 3 and ip6[54] == 47)"
            ),
        });
    }
    if metrics_port != 0 {
        parts.push(format!("not (tcp port {metrics_port})"));
    }
    parts.join(" and ")
}

/// Compiles `filter` for Ethernet frames into kernel socket-filter
/// instructions. Accepting returns keep up to 262144 bytes (tcpdump `-s 0`).
pub fn compile(filter: &str) -> Result<Vec<libc::sock_filter>> {
    let dead = Capture::dead(Linktype::ETHERNET)
        .map_err(|e| Error::Io { what: "libpcap pcap_open_dead".into(), source: std::io::Error::other(e) })?;
    let program = dead.compile(filter, true).map_err(|e| Error::Filter {
        filter: filter.to_owned(),
        message: match e {
            pcap::Error::PcapError(m) => m,
            other => other.to_string(),
        },
    })?;
    // BpfInstruction's fields are private; its Display is "code jt jf k".
    program
        .get_instructions()
        .iter()
        .map(|insn| {
            let text = insn.to_string();
            let mut f = text.split(' ').map(|n| n.parse::<u32>().ok());
            let (Some(Some(code)), Some(Some(jt)), Some(Some(jf)), Some(Some(k))) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return Err(Error::Io {
                    what: format!("unexpected BPF instruction {text:?}"),
                    source: std::io::Error::other("libpcap"),
                });
            };
            let (code, jt, jf) = (code as u16, jt as u8, jf as u8);
            // pcap_open_dead's snap length is 65535, which would cut GRO super-frames.
            let k = if code == BPF_RET_K && k != 0 { CAPTURE_SNAPLEN as u32 } else { k };
            Ok(libc::sock_filter { code, jt, jf, k })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn user_filter_is_parenthesised_and_anded_with_the_self_exclusion() {
        let f = compose(Some("tcp port 80 or udp"), &[v4("198.18.0.2")], OwnTraffic::Gre, 9469);
        assert_eq!(
            f,
            "(tcp port 80 or udp) and not (ip proto 47 and dst host 198.18.0.2) \
             and not (icmp and (icmp[0] == 3 or icmp[0] == 11 or icmp[0] == 12) and icmp[17] == 47 \
             and icmp[24:4] == 3323068418) and not (tcp port 9469)"
        );
    }

    #[test]
    fn empty_user_filter_leaves_only_the_exclusion() {
        assert_eq!(
            compose(Some("  "), &[v4("198.18.0.2")], OwnTraffic::Gre, 9469),
            compose(None, &[v4("198.18.0.2")], OwnTraffic::Gre, 9469)
        );
        assert!(compose(None, &[v4("198.18.0.2")], OwnTraffic::Gre, 9469).starts_with("not (ip proto 47"));
    }

    #[test]
    fn ipv6_collectors_exclude_gre_and_its_fragments() {
        let f = compose(None, &[v4("2001:db8::2")], OwnTraffic::Gre, 0);
        assert!(f.starts_with("not (ip6 dst host 2001:db8::2 and (ip6 proto 47 or ip6 proto 44))"), "{f}");
        compile(&f).expect("IPv6 exclusion compiles");
    }

    #[test]
    fn every_collector_gets_its_own_exclusion() {
        let f = compose(Some("tcp"), &[v4("198.18.0.2"), v4("198.18.0.3")], OwnTraffic::Gre, 9469);
        assert!(f.contains("dst host 198.18.0.2") && f.contains("dst host 198.18.0.3"), "{f}");
        compile(&f).expect("composed filter compiles");
    }

    #[test]
    fn composed_filter_compiles_and_accepts_with_the_full_snap_length() {
        let prog =
            compile(&compose(Some("tcp"), &[v4("198.18.0.2"), v4("2001:db8::2")], OwnTraffic::Gre, 9469))
                .unwrap();
        let rets: Vec<u32> = prog.iter().filter(|i| i.code == BPF_RET_K).map(|i| i.k).collect();
        assert!(rets.contains(&(CAPTURE_SNAPLEN as u32)) && rets.contains(&0), "{rets:?}");
    }

    #[test]
    fn invalid_filter_reports_libpcaps_message_and_exit_code_2() {
        let e = compile("tcp port eighty").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("tcp port eighty") && msg.contains("BPC_FILTER"), "{msg}");
    }

    /// Runs the composed filter over a frame with libpcap's own interpreter.
    fn matches(filter: &str, frame: &[u8]) -> bool {
        Capture::dead(Linktype::ETHERNET).unwrap().compile(filter, true).unwrap().filter(frame)
    }

    fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .write(&mut out, etherparse::IpNumber(proto), payload)
            .unwrap();
        out
    }

    #[test]
    fn composed_filter_drops_own_gre_and_icmp_errors_about_it_but_keeps_the_rest() {
        let f = compose(None, &[v4("198.18.0.2")], OwnTraffic::Gre, 9469);
        let gre =
            ipv4_frame([198, 18, 1, 1], [198, 18, 0, 2], 47, &[0x30, 0, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(!matches(&f, &gre), "own GRE must be excluded");
        // ICMP protocol unreachable quoting that GRE packet's IP header.
        let mut icmp = vec![3, 2, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&gre[14..14 + 28]);
        let icmp_err = ipv4_frame([198, 18, 0, 2], [198, 18, 1, 1], 1, &icmp);
        assert!(!matches(&f, &icmp_err), "ICMP errors about own GRE must be excluded");
        // GRE to another host, and a ping to the collector, are the pod's own traffic.
        let other_gre = ipv4_frame([198, 18, 1, 1], [198, 18, 0, 9], 47, &[0; 12]);
        assert!(matches(&f, &other_gre));
        // A short ICMP message must not make the quoted-header check reject it (BPF
        // rejects on out-of-bounds loads).
        let ping = ipv4_frame([198, 18, 1, 1], [198, 18, 0, 2], 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert!(matches(&f, &ping));
        // The metrics port is excluded in both directions.
        let mut scrape = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 1, 9], [198, 18, 1, 1], 64)
            .tcp(40000, 9469, 1, 1000)
            .write(&mut scrape, b"GET /metrics")
            .unwrap();
        assert!(!matches(&f, &scrape));
    }

    #[test]
    fn vxlan_exclusion_drops_own_udp_its_fragments_and_icmp_about_it_but_keeps_other_udp() {
        let own = OwnTraffic::Udp { port: 4789 };
        let f = compose(None, &[v4("198.18.0.2")], own, 9469);
        let udp = |dst: [u8; 4], port: u16| {
            let mut out = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([198, 18, 1, 1], dst, 64)
                .udp(50000, port)
                .write(&mut out, &[8, 0, 0, 0, 0, 0, 1, 0])
                .unwrap();
            out
        };
        let vxlan = udp([198, 18, 0, 2], 4789);
        assert!(!matches(&f, &vxlan), "own VXLAN must be excluded");
        let mut fragment = vxlan.clone();
        fragment[14 + 6..14 + 8].copy_from_slice(&0x00b9u16.to_be_bytes()); // offset 1480
        assert!(!matches(&f, &fragment), "a later fragment of own VXLAN must be excluded");
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&vxlan[14..14 + 28]);
        assert!(!matches(&f, &ipv4_frame([198, 18, 0, 2], [198, 18, 1, 1], 1, &icmp)), "ICMP about it");
        assert!(matches(&f, &udp([198, 18, 0, 2], 53)), "DNS to the collector host is the pod's");
        assert!(matches(&f, &udp([198, 18, 0, 9], 4789)), "VXLAN to another host is the pod's");
        assert!(matches(&f, &ipv4_frame([198, 18, 1, 1], [198, 18, 0, 2], 47, &[0; 12])), "GRE is not ours");
        let f6 = compose(Some("tcp or udp"), &[v4("2001:2::2")], own, 9469);
        compile(&f6).expect("IPv6 VXLAN exclusion compiles");
        let v6 = bpc_wire::test_frames::udp_over_ipv6(50000, 4789, &[8, 0, 0, 0, 0, 0, 1, 0]);
        assert!(!matches(&f6, &v6), "own VXLAN over IPv6 must be excluded");
    }

    #[test]
    fn empty_filter_compiles_to_accept_all() {
        let prog = compile("").unwrap();
        assert_eq!(prog.len(), 1);
        assert_eq!((prog[0].code, prog[0].k), (BPF_RET_K, CAPTURE_SNAPLEN as u32));
    }
}
