//! Address -> name records for pcapng's Name Resolution Block (NRB), shared
//! by every pcapng writer of the product: `kubectl bpc capture -w`, the
//! Wireshark extcap and the receiver's `--write` (`kubectl bpc sink`).
//!
//! Wireshark and `tshark -N n` take the names of an NRB before asking DNS,
//! so a pod IP shows as its pod's name in the file itself, on any machine.
//! Pod IPs churn: a writer emits a new NRB whenever an address gets a name
//! it did not have ([`Written::fresh`]), so the names that follow a packet
//! in the file are the ones known when it was captured.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use bpc_contract::map::{MapEntry, RowType};
use pcap_file::pcapng::blocks::name_resolution::{Ipv4Record, Ipv6Record, NameResolutionBlock, Record};

/// The name an address of a map row resolves to: the pod's name for a pod
/// (what `kubectl get pods` shows), `NAME.NAMESPACE.svc` for a Service
/// ClusterIP (its DNS name in the cluster), the node's name for a node.
/// None for a row without a usable address.
pub fn host_of(entry: &MapEntry) -> Option<(IpAddr, String)> {
    let ip: IpAddr = entry.ip.parse().ok()?;
    let name = match entry.row_type {
        RowType::Pod if !entry.pod.is_empty() => entry.pod.clone(),
        RowType::Pod => return None,
        RowType::Service => format!("{}.{}.svc", entry.workload, entry.namespace),
        RowType::Node => entry.workload.clone(),
    };
    Some((ip, name))
}

/// The block naming `hosts` (one record each; empty names are left out).
pub fn block(hosts: &[(IpAddr, String)]) -> NameResolutionBlock<'static> {
    let records = hosts
        .iter()
        .filter(|(_, name)| !name.is_empty())
        .map(|(ip, name)| match ip {
            IpAddr::V4(a) => Record::Ipv4(Ipv4Record {
                ip_addr: Cow::Owned(a.octets().to_vec()),
                names: vec![Cow::Owned(name.clone())],
            }),
            IpAddr::V6(a) => Record::Ipv6(Ipv6Record {
                ip_addr: Cow::Owned(a.octets().to_vec()),
                names: vec![Cow::Owned(name.clone())],
            }),
        })
        .collect();
    NameResolutionBlock { records, options: Vec::new() }
}

/// The names a writer has put in its file so far.
#[derive(Debug, Default, Clone)]
pub struct Written {
    names: HashMap<IpAddr, String>,
}

impl Written {
    /// The hosts of `known` that are new or renamed since the last call
    /// (sorted, so a file's bytes do not depend on hash order), now counted
    /// as written. Empty: nothing to write.
    pub fn fresh(&mut self, known: impl IntoIterator<Item = (IpAddr, String)>) -> Vec<(IpAddr, String)> {
        let mut out: Vec<(IpAddr, String)> = known
            .into_iter()
            .filter(|(ip, name)| !name.is_empty() && self.names.get(ip) != Some(name))
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        for (ip, name) in &out {
            self.names.insert(*ip, name.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: RowType, ip: &str, ns: &str, workload: &str, pod: &str) -> MapEntry {
        serde_json::from_value(serde_json::json!({
            "type": match t { RowType::Pod => "pod", RowType::Service => "service", RowType::Node => "node" },
            "ip": ip, "namespace": ns, "kind": "Deployment", "workload": workload, "key": "0x00000001", "pod": pod
        }))
        .unwrap()
    }

    #[test]
    fn pods_resolve_to_their_pod_name_services_to_their_dns_name_and_nodes_to_theirs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            host_of(&row(RowType::Pod, "198.19.1.5", "shop", "checkout", "checkout-5f6c-x2k9p")),
            Some((ip("198.19.1.5"), "checkout-5f6c-x2k9p".into()))
        );
        assert_eq!(
            host_of(&row(RowType::Service, "198.19.200.10", "shop", "checkout", "")),
            Some((ip("198.19.200.10"), "checkout.shop.svc".into()))
        );
        assert_eq!(
            host_of(&row(RowType::Node, "198.19.0.1", "", "node-1", "")),
            Some((ip("198.19.0.1"), "node-1".into()))
        );
        assert_eq!(host_of(&row(RowType::Pod, "", "shop", "web", "web-1")), None, "no address yet");
    }

    #[test]
    fn only_new_or_renamed_addresses_are_written_again() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut w = Written::default();
        let first = w.fresh([(ip("198.19.1.6"), "b".into()), (ip("198.19.1.5"), "a".into())]);
        assert_eq!(first, [(ip("198.19.1.5"), "a".into()), (ip("198.19.1.6"), "b".into())]);
        assert!(w.fresh([(ip("198.19.1.5"), "a".into())]).is_empty(), "already written");
        // The IP went to a new pod: written again, with the new name.
        assert_eq!(w.fresh([(ip("198.19.1.5"), "c".into())]), [(ip("198.19.1.5"), "c".into())]);
    }
}

#[cfg(test)]
mod tshark_tests {
    use super::*;
    use bpc_wire::ethernet::ETHERTYPE_IPV4;
    use bpc_wire::{EthernetHeader, Ipv4Header};
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };

    fn udp_frame(source: [u8; 4], destination: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        EthernetHeader {
            destination: [2, 0, 0, 0, 0, 2],
            source: [2, 0, 0, 0, 0, 1],
            ethertype: ETHERTYPE_IPV4,
        }
        .encode(&mut f)
        .unwrap();
        Ipv4Header {
            source: source.into(),
            destination: destination.into(),
            protocol: 17,
            ttl: 64,
            identification: 0,
            dont_fragment: false,
            payload_len: 8,
        }
        .encode(&mut f[14..])
        .unwrap();
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&8u16.to_be_bytes());
        f
    }

    /// A pcapng with one interface, an NRB (IPv4 and IPv6 records), and one
    /// UDP packet from a pod to a Service.
    fn named_capture() -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![
                InterfaceDescriptionOption::IfName("shop/checkout-5f6c-x2k9p".into()),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
        .unwrap();
        let mut written = Written::default();
        let hosts = written.fresh([
            ("198.19.1.5".parse().unwrap(), "checkout-5f6c-x2k9p".to_owned()),
            ("198.19.200.10".parse().unwrap(), "payments.shop.svc".to_owned()),
            ("fd00:198:19::5".parse().unwrap(), "checkout-5f6c-x2k9p".to_owned()),
        ]);
        w.write_pcapng_block(block(&hosts)).unwrap();
        let packet = |ts: u64| EnhancedPacketBlock {
            interface_id: 0,
            timestamp: std::time::Duration::from_nanos(1_764_000_000_000_000_000 + ts),
            original_len: 42,
            data: udp_frame([198, 19, 1, 5], [198, 19, 200, 10]).into(),
            options: vec![],
        };
        w.write_pcapng_block(packet(0)).unwrap();
        w.into_inner()
    }

    #[test]
    fn the_name_resolution_block_matches_its_golden_and_tshark_shows_the_names_from_the_file() {
        // `BPC_REGEN=1 cargo test -p bpc-receiver --lib names` rewrites the golden.
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pcapng/names.pcapng");
        let got = named_capture();
        if std::env::var_os("BPC_REGEN").is_some() {
            std::fs::write(golden, &got).unwrap();
        }
        let want = std::fs::read(golden).unwrap_or_else(|e| panic!("{golden}: {e} (BPC_REGEN=1 writes it)"));
        assert!(want == got, "{golden} differs from what the writer writes now (BPC_REGEN=1 rewrites it)");
        let out = std::process::Command::new("tshark")
            // -N n: network names, from the file's NRB; no DNS is asked.
            .args(["-N", "n", "-o", "nameres.use_external_name_resolver:FALSE", "-r", golden])
            .args(["-T", "fields", "-e", "ip.src_host", "-e", "ip.dst_host"])
            .output()
            .expect("tshark runs");
        assert!(out.status.success(), "tshark rejects {golden}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "checkout-5f6c-x2k9p\tpayments.shop.svc\n");
        // Without -N n the same file shows addresses: the names come from the NRB.
        let out = std::process::Command::new("tshark")
            .args(["-n", "-r", golden, "-T", "fields", "-e", "ip.src_host"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "198.19.1.5\n");
    }
}
