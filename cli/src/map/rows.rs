//! The map's rows: one per pod IP, Service ClusterIP and node InternalIP.

use std::collections::BTreeMap;

use bpc_wire::WorkloadKey;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt;

use super::*;

/// Map rows of one pod: one per pod IP (dual-stack pods have two); none
/// before the pod has an IP or for host-network pods, whose IP is the node's.
pub fn entries_of_pod(pod: &Pod, owners: &OwnerCache) -> Vec<MapEntry> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return Vec::new();
    }
    let status = pod.status.as_ref();
    let mut ips: Vec<String> =
        status.and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|p| p.ip.clone()).collect();
    if ips.is_empty()
        && let Some(ip) = status.and_then(|s| s.pod_ip.clone())
    {
        ips.push(ip);
    }
    let namespace = pod.namespace().unwrap_or_default();
    let workload = owners.workload_of(pod);
    let workload_key = WorkloadKey::from_workload(&namespace, &workload.kind, &workload.name);
    // The key the stream arrives under: what the pod's agent sends.
    let (key, profile) = match crate::pod_spec::pod_agent(pod) {
        Some(agent) => {
            let (key, profile) = crate::pod_spec::sent_key(agent, workload_key);
            (key, Some(profile))
        }
        None => (workload_key, None),
    };
    let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
    let attached = profile.is_some();
    ips.into_iter()
        .filter(|ip| !ip.is_empty())
        .map(|ip| MapEntry {
            row_type: RowType::Pod,
            ip,
            namespace: namespace.clone(),
            kind: workload.kind.clone(),
            workload: workload.name.clone(),
            key: key.to_string(),
            pod: pod.name_any(),
            node: node.clone(),
            attached,
            backends: Vec::new(),
            profile,
        })
        .collect()
}

/// Whether a Service's selector picks a pod with these labels. A Service
/// without a selector has hand-made endpoints: it picks no workload here.
pub(super) fn selects(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Map rows of one Service: one per ClusterIP (`clusterIPs`, else
/// `clusterIP`); none for headless (`None`) and ExternalName Services, whose
/// callers send to pod IPs or elsewhere. `pods` are the pods' labels and
/// rows, of any namespace (only the Service's own are considered).
pub fn entries_of_service<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = (&'a BTreeMap<String, String>, &'a MapEntry)>,
) -> Vec<MapEntry> {
    let Some(spec) = svc.spec.as_ref() else { return Vec::new() };
    let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = spec.cluster_ip.clone()
    {
        ips.push(ip);
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    if ips.is_empty() {
        return Vec::new();
    }
    let namespace = svc.namespace().unwrap_or_default();
    let mut backends = Vec::new();
    let mut attached = false;
    for (labels, row) in pods {
        if row.namespace == namespace && selects(spec.selector.as_ref(), labels) {
            attached |= row.attached;
            backends.push(Backend {
                kind: row.kind.clone(),
                workload: row.workload.clone(),
                key: row.key.clone(),
            });
        }
    }
    backends.sort();
    backends.dedup();
    // One backend workload: the Service *is* that workload to its callers,
    // so it shares the key; otherwise a key of its own.
    let key = match backends.as_slice() {
        [b] => b.key.clone(),
        _ => WorkloadKey::from_workload(&namespace, "Service", &svc.name_any()).to_string(),
    };
    ips.into_iter()
        .map(|ip| MapEntry {
            row_type: RowType::Service,
            ip,
            namespace: namespace.clone(),
            kind: "Service".into(),
            workload: svc.name_any(),
            key: key.clone(),
            pod: String::new(),
            node: String::new(),
            attached,
            backends: backends.clone(),
            profile: None,
        })
        .collect()
}

/// Map rows of one Node: one per InternalIP.
pub fn entries_of_node(node: &Node) -> Vec<MapEntry> {
    let name = node.name_any();
    let key = WorkloadKey::from_workload("", "Node", &name).to_string();
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP" && !a.address.is_empty())
        .map(|a| MapEntry {
            row_type: RowType::Node,
            ip: a.address.clone(),
            namespace: String::new(),
            kind: "Node".into(),
            workload: name.clone(),
            key: key.clone(),
            pod: String::new(),
            node: name.clone(),
            attached: false,
            backends: Vec::new(),
            profile: None,
        })
        .collect()
}

pub(super) fn sort_rows(rows: &mut [MapEntry]) {
    rows.sort_by(|a, b| {
        (a.row_type, &a.namespace, &a.workload, &a.pod, &a.ip).cmp(&(
            b.row_type,
            &b.namespace,
            &b.workload,
            &b.pod,
            &b.ip,
        ))
    });
}

/// The map of listed pods only, sorted by namespace, workload, pod, IP.
pub fn build_map(pods: &[Pod], owners: &OwnerCache) -> Vec<MapEntry> {
    build_full_map(pods, &[], &[], owners)
}

/// The full map: pod rows, then Service rows, then node rows, each sorted
/// by namespace, name, pod, IP.
pub fn build_full_map(
    pods: &[Pod],
    services: &[Service],
    nodes: &[Node],
    owners: &OwnerCache,
) -> Vec<MapEntry> {
    let mut state = MapState::default();
    for p in pods {
        state.put_pod(p, owners);
    }
    for s in services {
        state.services.insert(id_of(s), s.clone());
    }
    for n in nodes {
        state.nodes.insert(n.name_any(), n.clone());
    }
    let mut rows = state.rows();
    sort_rows(&mut rows);
    rows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use bpc_wire::WorkloadKey;

    use k8s_openapi::api::core::v1::{Node, Service};

    use super::*;
    use crate::map::fixture::*;

    #[test]
    fn stateful_set_daemon_set_and_bare_pods_resolve_directly() {
        for (kind, owner) in [("StatefulSet", "db"), ("DaemonSet", "agent")] {
            let p = pod(json!({
                "metadata": {"name": format!("{owner}-0"), "namespace": "ns",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u",
                        "controller": true}]},
                "spec": {"containers": []}, "status": {"podIP": "198.18.2.1"}
            }));
            let r = &entries_of_pod(&p, &OwnerCache::default())[0];
            assert_eq!((r.kind.as_str(), r.workload.as_str()), (kind, owner));
        }
        let bare = pod(json!({"metadata": {"name": "debug", "namespace": "ns"},
            "spec": {"containers": []}, "status": {"podIP": "198.18.2.9"}}));
        let r = &entries_of_pod(&bare, &OwnerCache::default())[0];
        assert_eq!((r.kind.as_str(), r.workload.as_str(), r.node.as_str()), ("Pod", "debug", ""));
    }

    #[test]
    fn pods_without_ip_and_host_network_pods_have_no_rows() {
        let pending = pod(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}));
        assert!(entries_of_pod(&pending, &OwnerCache::default()).is_empty());
        let host = pod(json!({"metadata": {"name": "h", "namespace": "ns"},
            "spec": {"containers": [], "hostNetwork": true}, "status": {"podIP": "198.18.0.1"}}));
        assert!(entries_of_pod(&host, &OwnerCache::default()).is_empty());
    }

    #[test]
    fn dual_stack_pod_has_one_row_per_ip() {
        let p = pod(json!({"metadata": {"name": "d", "namespace": "ns"}, "spec": {"containers": []},
            "status": {"podIP": "198.18.3.1", "podIPs": [{"ip": "198.18.3.1"}, {"ip": "fd00::1"}]}}));
        let ips: Vec<_> = entries_of_pod(&p, &OwnerCache::default()).into_iter().map(|r| r.ip).collect();
        assert_eq!(ips, ["198.18.3.1", "fd00::1"]);
    }

    #[test]
    fn a_pod_whose_agent_sends_netis_is_mapped_under_the_keybit_it_sends() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let mut p = web_pod("198.18.1.2", true);
        let agent =
            p.spec.as_mut().unwrap().containers.iter_mut().find(|c| c.name == AGENT_CONTAINER).unwrap();
        agent.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "BPC_GRE_PROFILE".into(),
            value: Some("netis".into()),
            ..Default::default()
        }]);
        let row = &entries_of_pod(&p, &owners)[0];
        let key = WorkloadKey::from_workload("shop", "Deployment", "web");
        assert_eq!(row.key, key.as_sent(bpc_wire::GreProfile::Netis).to_string());
        assert_eq!(row.profile, Some(bpc_contract::GreProfile::Netis));
        let unattached = &entries_of_pod(&web_pod("198.18.1.3", false), &owners)[0];
        assert_eq!((unattached.key.clone(), unattached.profile), (key.to_string(), None));
    }

    #[test]
    fn service_rows_per_cluster_ip_name_the_workloads_the_selector_picks() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let pods = [web_pod_labelled("198.18.1.2"), db_pod("198.18.1.5")];
        let one = service("web", json!(["198.18.9.1", "fd00::9:1"]), json!({"app": "web"}));
        let both = service("data", json!(["198.18.9.2"]), json!({"tier": "data"}));
        let rows = build_full_map(&pods, &[one, both], &[], &owners);
        let svc: Vec<_> = rows.iter().filter(|r| r.row_type == RowType::Service).collect();
        let ips: Vec<_> = svc.iter().map(|r| (r.workload.as_str(), r.ip.as_str())).collect();
        assert_eq!(ips, [("data", "198.18.9.2"), ("web", "198.18.9.1"), ("web", "fd00::9:1")]);
        let web_key = WorkloadKey::from_workload("shop", "Deployment", "web").to_string();
        let web = svc[1];
        assert_eq!(
            web.backends,
            [Backend { kind: "Deployment".into(), workload: "web".into(), key: web_key.clone() }]
        );
        assert_eq!((web.key.as_str(), web.attached, web.kind.as_str()), (web_key.as_str(), true, "Service"));
        let data = svc[0];
        let names: Vec<_> = data.backends.iter().map(|b| b.workload.as_str()).collect();
        assert_eq!(names, ["web", "db"], "sorted by kind, then name");
        assert_eq!(data.key, WorkloadKey::from_workload("shop", "Service", "data").to_string());
        let v = serde_json::to_value(web).unwrap();
        assert_eq!(v["type"], "service");
        assert_eq!(v["backends"][0]["workload"], "web");
    }

    #[test]
    fn headless_selectorless_and_external_name_services_pick_nothing_or_have_no_row() {
        let pods = [db_pod("198.18.1.5")];
        let headless = service("h", json!(["None"]), json!({"app": "db"}));
        let manual = service("m", json!(["198.18.9.3"]), serde_json::Value::Null);
        let ext: Service = serde_json::from_value(
            json!({"metadata": {"name": "e", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "x"}}),
        )
        .unwrap();
        let rows = build_full_map(&pods, &[headless, manual, ext], &[], &OwnerCache::default());
        let svc: Vec<_> = rows.iter().filter(|r| r.row_type == RowType::Service).collect();
        assert_eq!(svc.len(), 1);
        assert_eq!((svc[0].workload.as_str(), svc[0].backends.len()), ("m", 0));
    }

    #[test]
    fn node_rows_are_internal_ips_only() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "198.19.64.1"},
                {"type": "Hostname", "address": "node-1"}, {"type": "ExternalIP", "address": "198.18.250.1"}]}}))
        .unwrap();
        let rows = build_full_map(&[], &[], &[node], &OwnerCache::default());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.row_type, r.ip.as_str(), r.workload.as_str(), r.node.as_str()),
            (RowType::Node, "198.19.64.1", "node-1", "node-1")
        );
        assert_eq!(serde_json::to_value(r).unwrap()["type"], "node");
    }

    #[test]
    fn map_rows_read_back_by_the_receiver_label_services_and_nodes() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let rows = build_full_map(
            &[web_pod_labelled("198.18.1.2")],
            &[service("web", json!(["198.18.9.1"]), json!({"app": "web"}))],
            &[],
            &owners,
        );
        let mut out = Vec::new();
        render(&rows, MapFormat::Json, &mut out).unwrap();
        let m = bpc_receiver::map::WorkloadMap::from_json(std::str::from_utf8(&out).unwrap()).unwrap();
        let p = m.peer(&"198.18.9.1".parse().unwrap()).unwrap();
        assert_eq!(
            (p.row_type, p.name.as_str(), p.backends[0].workload.as_str()),
            (RowType::Service, "web", "web")
        );
        assert_eq!(
            m.name(
                WorkloadKey::from_workload("shop", "Deployment", "web").0,
                bpc_contract::stream::ReceivedProfile::Standard
            ),
            Some("shop/deployment/web")
        );
    }
}
