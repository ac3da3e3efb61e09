//! `map --watch`'s state: the rows the current objects give, and what
//! changed when one of them changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt;
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};

use super::*;

/// Kind of change in `map --watch` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapEventKind {
    /// An address appeared (pod IP, ClusterIP, node IP).
    Add,
    /// A known address now maps to different fields (e.g. attached, a Service's backends).
    Update,
    /// An address went away (pod deleted or lost its IP, Service or node deleted).
    Delete,
}

/// One `map --watch` JSON line: `{"event":"add",...entry}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEvent {
    /// What happened.
    pub event: MapEventKind,
    /// The row concerned (for delete: the row as it was).
    #[serde(flatten)]
    pub entry: MapEntry,
}

/// The current map of a watch: the pods' rows (with their labels, for
/// Service selectors), the Services and Nodes, and the rows last emitted.
/// Every change re-derives the rows and emits the difference, so a pod that
/// changes workload also updates the Services that select it.
#[derive(Debug, Default)]
pub struct MapState {
    pub(super) pods: BTreeMap<(String, String), PodRows>,
    pub(super) services: BTreeMap<(String, String), Service>,
    pub(super) nodes: BTreeMap<String, Node>,
    /// Rows last emitted, per namespace (pods and Services) and for nodes.
    pub(super) emitted: BTreeMap<String, Rows>,
    pub(super) emitted_nodes: Rows,
}

/// What a change can affect.
pub(super) enum Scope {
    Namespace(String),
    Nodes,
    All,
}

/// Rows by (type, address).
pub(super) type Rows = BTreeMap<(RowType, String), MapEntry>;

/// A pod's labels (for Service selectors) and its rows.
pub(super) type PodRows = (BTreeMap<String, String>, Vec<MapEntry>);

pub(super) fn id_of<K: ResourceExt>(o: &K) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

impl MapState {
    pub(super) fn put_pod(&mut self, pod: &Pod, owners: &OwnerCache) {
        let rows = entries_of_pod(pod, owners);
        if rows.is_empty() {
            self.pods.remove(&id_of(pod));
        } else {
            self.pods.insert(id_of(pod), (pod.labels().clone(), rows));
        }
    }

    /// The rows of one namespace: its pods' and its Services' (whose
    /// selectors only pick pods of their own namespace).
    pub(super) fn namespace_rows(&self, ns: &str) -> Rows {
        let from = (ns.to_owned(), String::new());
        let pods: Vec<&PodRows> =
            self.pods.range(from.clone()..).take_while(|(k, _)| k.0 == ns).map(|(_, v)| v).collect();
        let pod_rows = || pods.iter().flat_map(|(labels, rows)| rows.iter().map(move |r| (labels, r)));
        let mut rows: Vec<MapEntry> = pod_rows().map(|(_, r)| r.clone()).collect();
        for (_, svc) in self.services.range(from..).take_while(|(k, _)| k.0 == ns) {
            rows.extend(entries_of_service(svc, pod_rows()));
        }
        rows.into_iter().map(|r| ((r.row_type, r.ip.clone()), r)).collect()
    }

    pub(super) fn node_rows(&self) -> Rows {
        self.nodes.values().flat_map(entries_of_node).map(|r| ((r.row_type, r.ip.clone()), r)).collect()
    }

    /// Every row the current objects give, unsorted.
    pub(super) fn rows(&self) -> Vec<MapEntry> {
        let namespaces: std::collections::BTreeSet<&String> =
            self.pods.keys().chain(self.services.keys()).map(|(ns, _)| ns).collect();
        let mut rows: Vec<MapEntry> =
            namespaces.into_iter().flat_map(|ns| self.namespace_rows(ns).into_values()).collect();
        rows.extend(self.node_rows().into_values());
        rows
    }

    /// Emits what changed in `scope` since the last call: deletes first,
    /// then adds and updates, each in (type, address) order. Only the scope
    /// is re-derived, so a pod event costs its namespace, not the cluster.
    pub(super) fn sync(&mut self, scope: Scope) -> Vec<MapEvent> {
        let namespaces: Vec<String> = match &scope {
            Scope::Namespace(ns) => vec![ns.clone()],
            Scope::Nodes => Vec::new(),
            Scope::All => {
                let mut all: std::collections::BTreeSet<String> = self.emitted.keys().cloned().collect();
                all.extend(self.pods.keys().chain(self.services.keys()).map(|(ns, _)| ns.clone()));
                all.into_iter().collect()
            }
        };
        let mut groups: Vec<(Option<String>, Rows)> = namespaces
            .into_iter()
            .map(|ns| {
                let rows = self.namespace_rows(&ns);
                (Some(ns), rows)
            })
            .collect();
        if matches!(scope, Scope::Nodes | Scope::All) {
            groups.push((None, self.node_rows()));
        }
        let empty = BTreeMap::new();
        let mut deletes = Vec::new();
        let mut changes = Vec::new();
        for (ns, now) in &groups {
            let old = match ns {
                Some(ns) => self.emitted.get(ns).unwrap_or(&empty),
                None => &self.emitted_nodes,
            };
            deletes.extend(
                old.iter()
                    .filter(|(k, _)| !now.contains_key(*k))
                    .map(|(_, e)| MapEvent { event: MapEventKind::Delete, entry: e.clone() }),
            );
            for (k, n) in now {
                match old.get(k) {
                    None => changes.push(MapEvent { event: MapEventKind::Add, entry: n.clone() }),
                    Some(o) if o != n => {
                        changes.push(MapEvent { event: MapEventKind::Update, entry: n.clone() })
                    }
                    Some(_) => {}
                }
            }
        }
        for (ns, now) in groups {
            match ns {
                Some(ns) if now.is_empty() => {
                    self.emitted.remove(&ns);
                }
                Some(ns) => {
                    self.emitted.insert(ns, now);
                }
                None => self.emitted_nodes = now,
            }
        }
        deletes.extend(changes);
        deletes
    }

    /// Applies the current state of a pod and returns the resulting events.
    pub fn apply(&mut self, pod: &Pod, owners: &OwnerCache) -> Vec<MapEvent> {
        self.put_pod(pod, owners);
        self.sync(Scope::Namespace(pod.namespace().unwrap_or_default()))
    }

    /// Forgets a deleted pod and returns delete events for its IPs (and
    /// updates of the Services that selected it).
    pub fn delete(&mut self, pod: &Pod) -> Vec<MapEvent> {
        self.pods.remove(&id_of(pod));
        self.sync(Scope::Namespace(pod.namespace().unwrap_or_default()))
    }

    /// Replaces all pods after a (re)list: pods that vanished while the
    /// watch was down are deleted, the rest diffed.
    pub fn relist(&mut self, pods: &[Pod], owners: &OwnerCache) -> Vec<MapEvent> {
        self.pods.clear();
        for p in pods {
            self.put_pod(p, owners);
        }
        self.sync(Scope::All)
    }

    /// Applies a Service.
    pub fn apply_service(&mut self, svc: &Service) -> Vec<MapEvent> {
        self.services.insert(id_of(svc), svc.clone());
        self.sync(Scope::Namespace(svc.namespace().unwrap_or_default()))
    }

    /// Forgets a deleted Service.
    pub fn delete_service(&mut self, svc: &Service) -> Vec<MapEvent> {
        self.services.remove(&id_of(svc));
        self.sync(Scope::Namespace(svc.namespace().unwrap_or_default()))
    }

    /// Replaces all Services after a (re)list.
    pub fn relist_services(&mut self, services: &[Service]) -> Vec<MapEvent> {
        self.services = services.iter().map(|s| (id_of(s), s.clone())).collect();
        self.sync(Scope::All)
    }

    /// Applies a Node.
    pub fn apply_node(&mut self, node: &Node) -> Vec<MapEvent> {
        self.nodes.insert(node.name_any(), node.clone());
        self.sync(Scope::Nodes)
    }

    /// Forgets a deleted Node.
    pub fn delete_node(&mut self, node: &Node) -> Vec<MapEvent> {
        self.nodes.remove(&node.name_any());
        self.sync(Scope::Nodes)
    }

    /// Replaces all Nodes after a (re)list.
    pub fn relist_nodes(&mut self, nodes: &[Node]) -> Vec<MapEvent> {
        self.nodes = nodes.iter().map(|n| (n.name_any(), n.clone())).collect();
        self.sync(Scope::Nodes)
    }

    /// Rows currently known.
    pub fn entries(&self) -> impl Iterator<Item = &MapEntry> {
        self.emitted.values().flat_map(BTreeMap::values).chain(self.emitted_nodes.values())
    }
}

/// What a secondary watch's objects do to the map.
pub(super) struct SideRows<K> {
    /// Named in the debug log of a failed watch.
    pub(super) what: &'static str,
    pub(super) relist: fn(&mut MapState, &[K]) -> Vec<MapEvent>,
    pub(super) apply: fn(&mut MapState, &K) -> Vec<MapEvent>,
    pub(super) delete: fn(&mut MapState, &K) -> Vec<MapEvent>,
}

pub(super) const SERVICE_ROWS: SideRows<Service> = SideRows {
    what: "service",
    relist: MapState::relist_services,
    apply: MapState::apply_service,
    delete: MapState::delete_service,
};

pub(super) const NODE_ROWS: SideRows<Node> = SideRows {
    what: "node",
    relist: MapState::relist_nodes,
    apply: MapState::apply_node,
    delete: MapState::delete_node,
};

/// One event of a secondary watch applied to the map; the objects of a
/// (re)list are gathered in `pending` until it is complete.
pub(super) fn side_event<K>(
    state: &mut MapState,
    pending: &mut Vec<K>,
    rows: &SideRows<K>,
    event: Result<watcher::Event<K>, watcher::Error>,
) -> Vec<MapEvent> {
    match event {
        Ok(watcher::Event::Init) => {
            pending.clear();
            Vec::new()
        }
        Ok(watcher::Event::InitApply(o)) => {
            pending.push(o);
            Vec::new()
        }
        Ok(watcher::Event::InitDone) => (rows.relist)(state, &std::mem::take(pending)),
        Ok(watcher::Event::Apply(o)) => (rows.apply)(state, &o),
        Ok(watcher::Event::Delete(o)) => (rows.delete)(state, &o),
        Err(e) => {
            tracing::debug!("{} watch: {e}", rows.what);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use k8s_openapi::api::core::v1::Node;

    use super::*;
    use crate::map::fixture::*;

    #[test]
    fn watch_state_updates_a_service_when_the_pods_it_selects_change() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let mut state = MapState::default();
        state.apply_service(&service("web", json!(["198.18.9.1"]), json!({"app": "web"})));
        let evs = state.apply(&web_pod_labelled("198.18.1.2"), &owners);
        let summary: Vec<_> = evs.iter().map(|e| (e.event, e.entry.row_type, e.entry.ip.as_str())).collect();
        assert_eq!(
            summary,
            [
                (MapEventKind::Add, RowType::Pod, "198.18.1.2"),
                (MapEventKind::Update, RowType::Service, "198.18.9.1")
            ]
        );
        assert_eq!(evs[1].entry.backends.len(), 1);
        // The pod replaced by one with a new IP: the Service row does not change.
        let evs = state.apply(&web_pod_labelled("198.18.1.3"), &owners);
        let summary: Vec<_> = evs.iter().map(|e| (e.event, e.entry.row_type)).collect();
        assert_eq!(summary, [(MapEventKind::Delete, RowType::Pod), (MapEventKind::Add, RowType::Pod)]);
        let evs = state.delete_service(&service("web", json!(["198.18.9.1"]), json!({"app": "web"})));
        assert_eq!((evs[0].event, evs[0].entry.row_type), (MapEventKind::Delete, RowType::Service));
    }

    #[test]
    fn a_pod_event_re_derives_only_its_namespace_and_keeps_the_others() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let mut state = MapState::default();
        let other = pod(json!({"metadata": {"name": "x", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": []}, "status": {"podIP": "198.18.4.4"}}));
        state.relist(&[web_pod_labelled("198.18.1.2"), other], &owners);
        // A Service in "shop" selecting app=web must not pick the pod of "ns".
        let evs = state.apply_service(&service("web", json!(["198.18.9.1"]), json!({"app": "web"})));
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].entry.backends.len(), 1);
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "198.19.64.1"}]}}))
        .unwrap();
        assert_eq!(state.apply_node(&node).len(), 1);
        let evs = state.apply(&web_pod_labelled("198.18.1.3"), &owners);
        let ips: Vec<_> = evs.iter().map(|e| (e.event, e.entry.ip.as_str())).collect();
        assert_eq!(ips, [(MapEventKind::Delete, "198.18.1.2"), (MapEventKind::Add, "198.18.1.3")]);
        let mut all: Vec<_> = state.entries().map(|e| e.ip.as_str()).collect();
        all.sort();
        assert_eq!(all, ["198.18.1.3", "198.18.4.4", "198.18.9.1", "198.19.64.1"]);
        assert_eq!(state.delete_node(&node)[0].event, MapEventKind::Delete);
    }

    #[test]
    fn watch_state_emits_add_update_and_delete() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let mut state = MapState::default();
        let kinds = |evs: Vec<MapEvent>| evs.into_iter().map(|e| e.event).collect::<Vec<_>>();
        assert_eq!(kinds(state.apply(&web_pod("198.18.1.2", false), &owners)), [MapEventKind::Add]);
        // Same state again: no event.
        assert!(state.apply(&web_pod("198.18.1.2", false), &owners).is_empty());
        assert_eq!(kinds(state.apply(&web_pod("198.18.1.2", true), &owners)), [MapEventKind::Update]);
        // IP change: old IP deleted, new added.
        assert_eq!(
            kinds(state.apply(&web_pod("198.18.1.3", true), &owners)),
            [MapEventKind::Delete, MapEventKind::Add]
        );
        let del = state.delete(&web_pod("198.18.1.3", true));
        assert_eq!(del.len(), 1);
        assert_eq!(del[0].entry.ip, "198.18.1.3");
        assert_eq!(state.entries().count(), 0);
    }

    #[test]
    fn relist_deletes_pods_that_vanished_while_disconnected() {
        let owners = OwnerCache::default();
        let mut state = MapState::default();
        state.apply(&web_pod("198.18.1.2", false), &owners);
        let other = pod(json!({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"containers": []},
            "status": {"podIP": "198.18.4.4"}}));
        let evs = state.relist(std::slice::from_ref(&other), &owners);
        let summary: Vec<_> = evs.iter().map(|e| (e.event, e.entry.ip.as_str())).collect();
        assert_eq!(summary, [(MapEventKind::Delete, "198.18.1.2"), (MapEventKind::Add, "198.18.4.4")]);
    }

    #[test]
    fn watch_event_json_line_flattens_the_entry() {
        let entry = entries_of_pod(&web_pod("198.18.1.2", true), &OwnerCache::default()).remove(0);
        let line = serde_json::to_value(MapEvent { event: MapEventKind::Delete, entry }).unwrap();
        assert_eq!(line["event"], "delete");
        assert_eq!(line["ip"], "198.18.1.2");
        assert_eq!(line["attached"], true);
    }
}
