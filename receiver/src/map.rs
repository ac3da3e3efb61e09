//! The [`WorkloadMap`] the receiver labels streams and paths with, built from
//! the rows of `kubectl bpc map -o json` ([`bpc_contract::map`], whose types
//! are re-exported here).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

pub use bpc_contract::map::{Backend, MAP_SCHEMA_VERSION, MapEntry, RowType};
use bpc_contract::stream::ReceivedProfile;

use crate::Error;

/// What the map says about one address, as paths need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Row type.
    pub row_type: RowType,
    /// Namespace (empty for nodes).
    pub namespace: String,
    /// Kind (workload kind, `Service`, `Node`).
    pub kind: String,
    /// Workload, Service or node name.
    pub name: String,
    /// Whether the pod (or some Service backend) is attached.
    pub attached: bool,
    /// Service backends.
    pub backends: Vec<Backend>,
}

/// Key -> "namespace/kind/name" per profile, and address -> [`Peer`].
#[derive(Debug, Clone, Default)]
pub struct WorkloadMap {
    /// Standard streams: the key as rows give it.
    names: HashMap<u32, String>,
    /// Netis streams: the keybit ([`bpc_wire::WorkloadKey::as_sent`]) of
    /// rows whose agent sends netis, and of every other pod row (a map
    /// written before rows carried the profile).
    netis_names: HashMap<u32, String>,
    /// VXLAN streams: the VNI of every pod row's key (its low 24 bits).
    vni_names: HashMap<u32, String>,
    /// ERSPAN streams: the session ID of every pod row's key (its low 10
    /// bits; the first row wins when two keys share one).
    session_names: HashMap<u32, String>,
    peers: HashMap<IpAddr, Peer>,
    /// Address -> host name for pcapng's Name Resolution Block ([`crate::names`]).
    hosts: HashMap<IpAddr, String>,
    /// Bumped by every [`WorkloadMap::update`]: a writer re-reads the hosts only when it moved.
    generation: u64,
}

impl WorkloadMap {
    /// Parses the JSON array (schema 1 or 2).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let rows: Vec<MapEntry> =
            serde_json::from_str(text).map_err(|e| Error::Invalid { what: "map", message: e.to_string() })?;
        Self::from_entries(&rows)
    }

    /// Builds the map from rows (the in-process watcher of `sink --map-watch`).
    pub fn from_entries<'a>(rows: impl IntoIterator<Item = &'a MapEntry>) -> Result<Self, Error> {
        let mut map = Self::default();
        for row in rows {
            let key: bpc_wire::WorkloadKey = row
                .key
                .parse()
                .map_err(|_| Error::Invalid { what: "map", message: format!("bad key {:?}", row.key) })?;
            // Only pods send streams: a Service row must not rename a key.
            if row.row_type == RowType::Pod {
                let keybit = key.as_sent(bpc_wire::GreProfile::Netis).0;
                map.vni_names.entry(bpc_wire::vxlan::vni_of(key)).or_insert_with(|| row.workload_path());
                let session = u32::from(bpc_wire::erspan::session_of(key));
                map.session_names.entry(session).or_insert_with(|| row.workload_path());
                match row.profile {
                    Some(bpc_contract::GreProfile::Netis) => {
                        map.netis_names.insert(keybit, row.workload_path());
                    }
                    _ => {
                        map.names.insert(key.0, row.workload_path());
                        map.netis_names.entry(keybit).or_insert_with(|| row.workload_path());
                    }
                }
            }
            if let Some((ip, name)) = crate::names::host_of(row) {
                map.hosts.insert(ip, name);
            }
            // Rows without a usable address still name their key.
            if let Ok(ip) = row.ip.parse::<IpAddr>() {
                map.peers.insert(
                    ip,
                    Peer {
                        row_type: row.row_type,
                        namespace: row.namespace.clone(),
                        kind: row.kind.clone(),
                        name: row.workload.clone(),
                        attached: row.attached,
                        backends: row.backends.clone(),
                    },
                );
            }
        }
        Ok(map)
    }

    /// Reads a map file.
    pub fn load(path: &str) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::File { path: path.to_string(), source })?;
        Self::from_json(&text)
    }

    /// The workload of a stream's key, as a stream of `profile` carries it
    /// (netis: the keybit; VXLAN: the VNI; ERSPAN: the session ID).
    pub fn name(&self, key: u32, profile: ReceivedProfile) -> Option<&str> {
        let names = match profile {
            ReceivedProfile::Netis => &self.netis_names,
            ReceivedProfile::Vxlan => &self.vni_names,
            ReceivedProfile::ErspanIi | ReceivedProfile::ErspanIii => &self.session_names,
            ReceivedProfile::Standard | ReceivedProfile::Anonymous => &self.names,
        };
        names.get(&key).map(String::as_str)
    }

    /// What the map says about an address.
    pub fn peer(&self, ip: &IpAddr) -> Option<&Peer> {
        self.peers.get(ip)
    }

    /// Address -> host name, as a Name Resolution Block gives them.
    pub fn hosts(&self) -> impl Iterator<Item = (IpAddr, String)> + '_ {
        self.hosts.iter().map(|(ip, name)| (*ip, name.clone()))
    }

    /// How many updates the map has had (a change of hosts moves it).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Rows (addresses) known.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// No address known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Replaces the map with `newer`, keeping the addresses that `newer` no
    /// longer has: a replaced pod's IP leaves the map, but the flows it had
    /// must keep their workload. An address a new row claims takes the new label.
    pub fn update(&mut self, newer: WorkloadMap) {
        let WorkloadMap { names, netis_names, vni_names, session_names, peers, hosts, generation: _ } = newer;
        for (ip, peer) in peers {
            self.peers.insert(ip, peer);
        }
        self.hosts.extend(hosts);
        self.generation += 1;
        self.names.extend(names);
        self.netis_names.extend(netis_names);
        self.vni_names.extend(vni_names);
        self.session_names.extend(session_names);
    }

    /// Keys whose workload is `ns/name` or `ns/kind/name`.
    /// (Standard keys first; a workload whose agent sends netis is found by its keybit.)
    pub fn find(&self, wanted: &str) -> Option<u32> {
        self.names.iter().chain(&self.netis_names).find_map(|(k, n)| {
            let parts: Vec<&str> = n.split('/').collect();
            let short = format!("{}/{}", parts[0], parts[2]);
            (n == wanted || short == wanted).then_some(*k)
        })
    }
}

/// The map shared between the receiver and whoever keeps it fresh (the file
/// poller of `--map`, the watcher of `sink --map-watch`).
pub type SharedMap = Arc<RwLock<WorkloadMap>>;

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"[
      {"type": "pod", "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "api",
       "key": "0x00000011", "pod": "api-1", "node": "n1", "attached": true},
      {"type": "service", "ip": "198.18.9.1", "namespace": "shop", "kind": "Service", "workload": "api-svc",
       "key": "0x00000011", "attached": true,
       "backends": [{"kind": "Deployment", "workload": "api", "key": "0x00000011"}]},
      {"type": "node", "ip": "198.19.64.1", "kind": "Node", "workload": "node-1", "key": "0x00000099",
       "node": "node-1"}
    ]"#;

    #[test]
    fn vxlan_and_erspan_streams_are_labelled_by_the_vni_and_session_of_an_ipv6_pods_key() {
        let key = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "web");
        let m = WorkloadMap::from_json(&format!(
            r#"[{{"type": "pod", "ip": "2001:2:0:1::1", "namespace": "shop", "kind": "Deployment",
                 "workload": "web", "key": "{key}", "pod": "web-1", "attached": true}}]"#
        ))
        .unwrap();
        let vni = bpc_wire::vxlan::vni_of(key);
        let session = u32::from(bpc_wire::erspan::session_of(key));
        assert_eq!(m.name(vni, ReceivedProfile::Vxlan), Some("shop/deployment/web"));
        assert_eq!(m.name(session, ReceivedProfile::ErspanIi), Some("shop/deployment/web"));
        assert_eq!(m.name(session, ReceivedProfile::ErspanIii), Some("shop/deployment/web"));
        assert_eq!(m.name(vni, ReceivedProfile::Standard), None, "a VNI is no GRE key");
        assert_eq!(m.peer(&"2001:2:0:1::1".parse().unwrap()).map(|p| p.name.as_str()), Some("web"));
    }

    #[test]
    fn schema_1_rows_without_type_are_pods() {
        let m = WorkloadMap::from_json(
            r#"[{"ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "web",
                 "key": "0x0000000a", "pod": "web-1"}]"#,
        )
        .unwrap();
        assert_eq!(m.name(10, ReceivedProfile::Standard), Some("shop/deployment/web"));
        let p = m.peer(&"198.18.1.2".parse().unwrap()).unwrap();
        assert_eq!((p.row_type, p.name.as_str(), p.attached), (RowType::Pod, "web", false));
    }

    #[test]
    fn a_netis_stream_is_labelled_by_its_keybit_from_netis_rows_and_from_rows_without_a_profile() {
        let key = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "web");
        let keybit = key.as_sent(bpc_wire::GreProfile::Netis).0;
        // A row of `kubectl bpc map` for a pod whose agent sends netis: the key as sent.
        let netis = format!(
            r#"[{{"type": "pod", "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment",
                 "workload": "web", "key": "{:#010x}", "pod": "web-1", "attached": true, "profile": "netis"}}]"#,
            keybit
        );
        let m = WorkloadMap::from_json(&netis).unwrap();
        assert_eq!(m.name(keybit, ReceivedProfile::Netis), Some("shop/deployment/web"));
        assert_eq!(m.name(keybit, ReceivedProfile::Standard), None, "a keybit is no standard key");
        // A map without profiles (older files, unattached pods): the keybit of its key.
        let plain = netis
            .replace(&format!("{keybit:#010x}"), &key.to_string())
            .replace(r#", "profile": "netis""#, "");
        let m = WorkloadMap::from_json(&plain).unwrap();
        assert_eq!(m.name(key.0, ReceivedProfile::Standard), Some("shop/deployment/web"));
        assert_eq!(m.name(keybit, ReceivedProfile::Netis), Some("shop/deployment/web"));
    }

    #[test]
    fn service_and_node_rows_label_addresses_but_never_rename_a_key() {
        let m = WorkloadMap::from_json(V2).unwrap();
        assert_eq!(m.name(0x11, ReceivedProfile::Standard), Some("shop/deployment/api"));
        assert_eq!(m.name(0x99, ReceivedProfile::Standard), None, "node rows send no stream");
        let svc = m.peer(&"198.18.9.1".parse().unwrap()).unwrap();
        assert_eq!((svc.row_type, svc.name.as_str()), (RowType::Service, "api-svc"));
        assert_eq!(svc.backends[0].workload, "api");
        let node = m.peer(&"198.19.64.1".parse().unwrap()).unwrap();
        assert_eq!((node.row_type, node.namespace.as_str()), (RowType::Node, ""));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn unknown_row_type_is_rejected() {
        let err = WorkloadMap::from_json(
            r#"[{"type": "ingress", "ip": "1.2.3.4", "kind": "X", "workload": "x", "key": "1"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ingress"), "{err}");
    }

    #[test]
    fn update_keeps_addresses_that_left_and_relabels_reused_ones() {
        let mut m = WorkloadMap::from_json(V2).unwrap();
        let newer = WorkloadMap::from_json(
            r#"[{"type": "pod", "ip": "198.18.1.3", "namespace": "shop", "kind": "Deployment",
                 "workload": "api", "key": "0x00000011", "pod": "api-2"},
                {"type": "pod", "ip": "198.19.64.1", "namespace": "shop", "kind": "Deployment",
                 "workload": "db", "key": "0x00000012", "pod": "db-1"}]"#,
        )
        .unwrap();
        m.update(newer);
        assert_eq!(m.peer(&"198.18.1.2".parse().unwrap()).unwrap().name, "api", "old pod IP kept");
        assert_eq!(m.peer(&"198.18.1.3".parse().unwrap()).unwrap().name, "api");
        assert_eq!(m.peer(&"198.19.64.1".parse().unwrap()).unwrap().name, "db", "reused address relabelled");
    }
}
