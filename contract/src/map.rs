//! The `kubectl bpc map -o json` rows: one per address a capture can show.
//! `kubectl bpc map` writes them; `bpc-sim --map FILE` and
//! `kubectl bpc sink --map-watch` label streams and paths with them.
//!
//! Schema version [`MAP_SCHEMA_VERSION`] (2): every row has a `type`:
//! `pod`, `service` (one row per `clusterIPs` entry) or `node` (InternalIP).
//! Version 1 rows had no `type` and were all pods; they still read as pods.

use serde::{Deserialize, Serialize};

/// Version of the map row schema (documented in docs/guide.md, *map*).
pub const MAP_SCHEMA_VERSION: u32 = 2;

/// What an address in the map is: the row's `type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowType {
    /// A pod IP (the source of the pod's GRE stream).
    #[default]
    Pod,
    /// A Service ClusterIP: calls to it are DNATed to a backend after the pod's interface.
    Service,
    /// A node's InternalIP (host-network pods, SNATed traffic, kubelet probes).
    Node,
}

names!(RowType, "map row type" { Pod => "pod", Service => "service", Node => "node" });

/// A workload a Service's selector picks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Backend {
    /// Workload kind, e.g. `Deployment`.
    pub kind: String,
    /// Workload name.
    pub workload: String,
    /// Workload key as `0x%08x`.
    pub key: String,
}

/// One row of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    /// Row type; absent in version 1 files, where every row is a pod.
    #[serde(rename = "type", default)]
    pub row_type: RowType,
    /// The address: pod IP, Service ClusterIP or node InternalIP, as the API
    /// server wrote it (the CLI sorts and prints it so; readers parse it).
    pub ip: String,
    /// Namespace of the pod or Service; empty for nodes.
    #[serde(default)]
    pub namespace: String,
    /// Workload kind as the API names it (`Deployment`, `StatefulSet`, `Pod`,
    /// an owner's kind); `Service`; `Node`. Kept as written: a pod's owner
    /// may be any controller, not only the kinds the CLI knows.
    pub kind: String,
    /// Workload name; the Service's name; the node's name.
    pub workload: String,
    /// Workload key as `0x%08x` (a Service with exactly one backend workload
    /// has that workload's key, otherwise the key of `ns/service/name`).
    pub key: String,
    /// Pod name (pods only).
    #[serde(default)]
    pub pod: String,
    /// Node the pod runs on; the node's own name for node rows.
    #[serde(default)]
    pub node: String,
    /// Pods: carries the sidecar. Services: some backend pod does.
    #[serde(default)]
    pub attached: bool,
    /// Services: the workloads the selector picks, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
    /// Pods with the sidecar: the GRE profile their agent sends with; `key`
    /// is then the key as that agent sends it (its `--key` if set; under
    /// netis the low 28 bits). Absent otherwise, and in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::GreProfile>,
}

impl MapEntry {
    /// `namespace/kind/name` with the kind in lower case: the workload path
    /// a pod row's stream is known by.
    pub fn workload_path(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind.to_lowercase(), self.workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of each type; the service row with a backend.
    const ROWS: &str = r#"[
      {"type": "service", "ip": "198.18.9.1", "namespace": "shop", "kind": "Service", "workload": "db-svc",
       "key": "0x00000012", "pod": "", "node": "", "attached": false,
       "backends": [{"kind": "StatefulSet", "workload": "db", "key": "0x00000012"}]},
      {"type": "pod", "ip": "fd00::2", "namespace": "shop", "kind": "StatefulSet", "workload": "db",
       "key": "0x00000012", "pod": "db-0", "node": "n2", "attached": false},
      {"type": "node", "ip": "198.19.64.2", "namespace": "", "kind": "Node", "workload": "n2",
       "key": "0x00000098", "pod": "", "node": "n2", "attached": false}
    ]"#;

    #[test]
    fn rows_round_trip_and_pods_omit_backends() {
        let golden: serde_json::Value = serde_json::from_str(ROWS).unwrap();
        let rows: Vec<MapEntry> = serde_json::from_value(golden.clone()).unwrap();
        let types: Vec<RowType> = rows.iter().map(|r| r.row_type).collect();
        assert_eq!(types, [RowType::Service, RowType::Pod, RowType::Node]);
        assert_eq!(serde_json::to_value(&rows).unwrap(), golden, "pods and nodes write no backends");
    }

    #[test]
    fn schema_1_rows_without_type_are_pods() {
        let rows: Vec<MapEntry> = serde_json::from_str(
            r#"[{"ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "web",
                 "key": "0x0000000a", "pod": "web-1"}]"#,
        )
        .unwrap();
        assert_eq!((rows[0].row_type, rows[0].attached), (RowType::Pod, false));
        assert_eq!(rows[0].workload_path(), "shop/deployment/web");
    }

    #[test]
    fn unknown_row_types_are_rejected() {
        let row = |ty: &str, ip: &str| {
            format!(r#"{{"type": "{ty}", "ip": "{ip}", "kind": "X", "workload": "x", "key": "1"}}"#)
        };
        let err = serde_json::from_str::<MapEntry>(&row("ingress", "1.2.3.4")).unwrap_err();
        assert!(err.to_string().contains("ingress"), "{err}");
        assert!(serde_json::from_str::<MapEntry>(&row("pod", "1.2.3.4")).is_ok());
    }
}
