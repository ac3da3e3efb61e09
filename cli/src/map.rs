//! `kubectl bpc map`: pod IP -> workload table, so a collector can label each
//! GRE stream (keyed by workload key and source pod IP) while pod IPs churn.
//!
//! Owners are resolved from one list of ReplicaSets, never one GET per pod:
//! Pod -> ReplicaSet -> Deployment, StatefulSet/DaemonSet/Job directly, and a
//! bare pod is its own workload (kind `Pod`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use bpc_wire::WorkloadKey;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::Error;

pub use crate::sidecar::AGENT_CONTAINER;

/// One row of the map: the shared `kubectl bpc map -o json` contract that
/// `bpc-sim --map FILE` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    /// Pod IP (the source address of the pod's GRE stream).
    pub ip: String,
    /// Namespace of the pod.
    pub namespace: String,
    /// Workload kind, e.g. `Deployment`, `StatefulSet`, `Pod`.
    pub kind: String,
    /// Workload name.
    pub workload: String,
    /// Workload key as `0x%08x` (the GRE key of the Standard profile).
    pub key: String,
    /// Pod name.
    pub pod: String,
    /// Node the pod runs on (empty when not scheduled).
    pub node: String,
    /// Whether the pod carries the `bpc-agent` sidecar.
    pub attached: bool,
}

/// Output format of `map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MapFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The JSON array of the shared contract.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Arguments of `kubectl bpc map`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapArgs {
    /// Stream changes as JSON lines (`{"event":"add|update|delete",...}`) until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = MapFormat::Table)]
    pub output: MapFormat,
}

/// A workload as identified from a pod's owner chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Kind (`Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, `Pod`, ...).
    pub kind: String,
    /// Name of the workload object.
    pub name: String,
}

/// ReplicaSet -> owning Deployment, per namespace, built from one list call.
#[derive(Debug, Default, Clone)]
pub struct OwnerCache {
    /// (namespace, replicaset name) -> controller owner (kind, name) if any.
    replica_sets: HashMap<(String, String), Option<(String, String)>>,
}

fn controller_of(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs?;
    refs.iter().find(|r| r.controller == Some(true)).or_else(|| refs.first())
}

impl OwnerCache {
    /// Builds the cache from listed ReplicaSets.
    pub fn from_replica_sets<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> Self {
        let mut cache = Self::default();
        for rs in sets {
            cache.insert(rs);
        }
        cache
    }

    /// Adds or replaces one ReplicaSet (used while watching).
    pub fn insert(&mut self, rs: &ReplicaSet) {
        let owner =
            controller_of(rs.metadata.owner_references.as_ref()).map(|o| (o.kind.clone(), o.name.clone()));
        self.replica_sets.insert((rs.namespace().unwrap_or_default(), rs.name_any()), owner);
    }

    /// Whether the cache knows this ReplicaSet.
    pub fn knows(&self, namespace: &str, replica_set: &str) -> bool {
        self.replica_sets.contains_key(&(namespace.to_owned(), replica_set.to_owned()))
    }

    /// Resolves the workload a pod belongs to.
    ///
    /// A ReplicaSet missing from the cache (created after the list) is mapped
    /// to its Deployment by stripping the pod-template-hash suffix, which is
    /// how the Deployment controller names it; that keeps the key stable
    /// instead of briefly labelling traffic with the ReplicaSet.
    pub fn workload_of(&self, pod: &Pod) -> Workload {
        let namespace = pod.namespace().unwrap_or_default();
        let Some(owner) = controller_of(pod.metadata.owner_references.as_ref()) else {
            return Workload { kind: "Pod".into(), name: pod.name_any() };
        };
        if owner.kind != "ReplicaSet" {
            return Workload { kind: owner.kind.clone(), name: owner.name.clone() };
        }
        match self.replica_sets.get(&(namespace, owner.name.clone())) {
            Some(Some((kind, name))) => Workload { kind: kind.clone(), name: name.clone() },
            Some(None) => Workload { kind: "ReplicaSet".into(), name: owner.name.clone() },
            None => {
                let hash = pod.labels().get("pod-template-hash");
                match hash.and_then(|h| owner.name.strip_suffix(h.as_str())?.strip_suffix('-')) {
                    Some(deploy) => Workload { kind: "Deployment".into(), name: deploy.to_owned() },
                    None => Workload { kind: "ReplicaSet".into(), name: owner.name.clone() },
                }
            }
        }
    }
}

/// Whether a pod carries the capture sidecar (as a container or a native
/// sidecar init container).
pub fn pod_is_attached(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.containers.iter().any(|c| c.name == AGENT_CONTAINER)
        || spec.init_containers.iter().flatten().any(|c| c.name == AGENT_CONTAINER)
}

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
    let key = WorkloadKey::from_workload(&namespace, &workload.kind, &workload.name);
    let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
    let attached = pod_is_attached(pod);
    ips.into_iter()
        .filter(|ip| !ip.is_empty())
        .map(|ip| MapEntry {
            ip,
            namespace: namespace.clone(),
            kind: workload.kind.clone(),
            workload: workload.name.clone(),
            key: key.to_string(),
            pod: pod.name_any(),
            node: node.clone(),
            attached,
        })
        .collect()
}

/// The full map of listed pods, sorted by namespace, workload, pod, IP.
pub fn build_map(pods: &[Pod], owners: &OwnerCache) -> Vec<MapEntry> {
    let mut rows: Vec<MapEntry> = pods.iter().flat_map(|p| entries_of_pod(p, owners)).collect();
    rows.sort_by(|a, b| {
        (&a.namespace, &a.workload, &a.pod, &a.ip).cmp(&(&b.namespace, &b.workload, &b.pod, &b.ip))
    });
    rows
}

/// Writes the map in the chosen format.
pub fn render(rows: &[MapEntry], format: MapFormat, out: &mut impl Write) -> Result<(), Error> {
    match format {
        MapFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, rows).map_err(|e| Error::Encode(e.to_string()))?;
            writeln!(out)?;
        }
        MapFormat::Csv => {
            writeln!(out, "ip,namespace,kind,workload,key,pod,node,attached")?;
            for r in rows {
                let fields = [&r.ip, &r.namespace, &r.kind, &r.workload, &r.key, &r.pod, &r.node];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{},{}", line.join(","), r.attached)?;
            }
        }
        MapFormat::Table => {
            let header = ["IP", "NAMESPACE", "KIND", "WORKLOAD", "KEY", "POD", "NODE", "ATTACHED"];
            let body: Vec<[String; 8]> = rows
                .iter()
                .map(|r| {
                    [
                        r.ip.clone(),
                        r.namespace.clone(),
                        r.kind.clone(),
                        r.workload.clone(),
                        r.key.clone(),
                        r.pod.clone(),
                        r.node.clone(),
                        if r.attached { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            write_table(out, &header, &body)?;
        }
    }
    Ok(())
}

/// Writes left-aligned columns separated by three spaces, like `kubectl get`.
pub(crate) fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Kind of change in `map --watch` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapEventKind {
    /// A pod IP appeared.
    Add,
    /// A known pod IP now maps to different fields (e.g. attached changed).
    Update,
    /// A pod IP went away (pod deleted or lost its IP).
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

/// The current map of a watch, keyed by (namespace, pod) so that pod updates
/// turn into add/update/delete events per IP.
#[derive(Debug, Default)]
pub struct MapState {
    by_pod: BTreeMap<(String, String), Vec<MapEntry>>,
}

impl MapState {
    /// Applies the current state of a pod and returns the resulting events.
    pub fn apply(&mut self, pod: &Pod, owners: &OwnerCache) -> Vec<MapEvent> {
        let id = (pod.namespace().unwrap_or_default(), pod.name_any());
        let new = entries_of_pod(pod, owners);
        let old = self.by_pod.remove(&id).unwrap_or_default();
        let events = diff(&old, &new);
        if !new.is_empty() {
            self.by_pod.insert(id, new);
        }
        events
    }

    /// Forgets a deleted pod and returns delete events for its IPs.
    pub fn delete(&mut self, pod: &Pod) -> Vec<MapEvent> {
        let id = (pod.namespace().unwrap_or_default(), pod.name_any());
        let old = self.by_pod.remove(&id).unwrap_or_default();
        old.into_iter().map(|entry| MapEvent { event: MapEventKind::Delete, entry }).collect()
    }

    /// Replaces the whole state after a (re)list: pods that vanished while the
    /// watch was down are deleted, the rest diffed.
    pub fn relist(&mut self, pods: &[Pod], owners: &OwnerCache) -> Vec<MapEvent> {
        let present: std::collections::HashSet<(String, String)> =
            pods.iter().map(|p| (p.namespace().unwrap_or_default(), p.name_any())).collect();
        let gone: Vec<_> = self.by_pod.keys().filter(|k| !present.contains(*k)).cloned().collect();
        let mut events = Vec::new();
        for id in gone {
            for entry in self.by_pod.remove(&id).unwrap_or_default() {
                events.push(MapEvent { event: MapEventKind::Delete, entry });
            }
        }
        for pod in pods {
            events.extend(self.apply(pod, owners));
        }
        events
    }

    /// Rows currently known.
    pub fn entries(&self) -> impl Iterator<Item = &MapEntry> {
        self.by_pod.values().flatten()
    }
}

fn diff(old: &[MapEntry], new: &[MapEntry]) -> Vec<MapEvent> {
    let mut events = Vec::new();
    for o in old {
        if !new.iter().any(|n| n.ip == o.ip) {
            events.push(MapEvent { event: MapEventKind::Delete, entry: o.clone() });
        }
    }
    for n in new {
        match old.iter().find(|o| o.ip == n.ip) {
            None => events.push(MapEvent { event: MapEventKind::Add, entry: n.clone() }),
            Some(o) if o != n => events.push(MapEvent { event: MapEventKind::Update, entry: n.clone() }),
            Some(_) => {}
        }
    }
    events
}

use crate::kube_context::scoped_api as apis;

/// Lists pods and ReplicaSets (one call each) and builds the map.
/// `namespace` None means all namespaces.
pub async fn fetch_map(client: &Client, namespace: Option<&str>) -> Result<Vec<MapEntry>, Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let owners = OwnerCache::from_replica_sets(&sets.items);
    let pods = pod_api.list(&ListParams::default()).await?;
    Ok(build_map(&pods.items, &owners))
}

/// Runs `kubectl bpc map`: prints the map once, or with `--watch` streams
/// changes as JSON lines until the watch ends.
pub async fn run(args: &MapArgs, client: &Client, namespace: Option<&str>) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    if !args.watch {
        let rows = fetch_map(client, namespace).await?;
        return render(&rows, args.output, &mut stdout);
    }
    drop(stdout);
    watch(client, namespace, |ev| {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &ev).map_err(|e| Error::Encode(e.to_string()))?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    })
    .await
}

/// Watches pods (and ReplicaSets, to keep the owner cache fresh) and calls
/// `emit` for each map change. Returns when the pod watch stream ends.
pub async fn watch(
    client: &Client,
    namespace: Option<&str>,
    mut emit: impl FnMut(MapEvent) -> Result<(), Error>,
) -> Result<(), Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let mut owners = OwnerCache::from_replica_sets(&sets.items);
    let mut state = MapState::default();
    let mut pods = watcher(pod_api, watcher::Config::default()).boxed();
    let mut rs_events = watcher(rs_api, watcher::Config::default()).boxed();
    let mut relist: Vec<Pod> = Vec::new();
    loop {
        tokio::select! {
            ev = pods.try_next() => {
                let Some(ev) = ev.map_err(|e| Error::Usage(format!("pod watch failed: {e}")))? else {
                    return Ok(());
                };
                let events = match ev {
                    watcher::Event::Init => { relist.clear(); Vec::new() }
                    watcher::Event::InitApply(p) => { relist.push(p); Vec::new() }
                    watcher::Event::InitDone => state.relist(&std::mem::take(&mut relist), &owners),
                    watcher::Event::Apply(p) => state.apply(&p, &owners),
                    watcher::Event::Delete(p) => state.delete(&p),
                };
                for e in events {
                    emit(e)?;
                }
            }
            ev = rs_events.next() => {
                // The ReplicaSet watch only refreshes the cache; its failures
                // are retried by the watcher and never stop the pod stream.
                if let Some(Ok(watcher::Event::Apply(rs) | watcher::Event::InitApply(rs))) = ev {
                    owners.insert(&rs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn web_pod(ip: &str, attached: bool) -> Pod {
        let mut containers = vec![json!({"name": "web", "image": "nginx"})];
        if attached {
            containers.push(json!({"name": "bpc-agent", "image": "bpc-agent"}));
        }
        pod(json!({
            "metadata": {"name": "web-5f6c7d8b9-abcde", "namespace": "shop",
                "labels": {"pod-template-hash": "5f6c7d8b9"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5f6c7d8b9",
                    "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": containers},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}
        }))
    }

    fn web_rs() -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-5f6c7d8b9", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "u0", "controller": true}]},
        }))
        .unwrap()
    }

    #[test]
    fn pod_of_a_replica_set_maps_to_its_deployment_and_key() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let rows = entries_of_pod(&web_pod("198.18.1.2", true), &owners);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.kind.as_str(), r.workload.as_str()), ("Deployment", "web"));
        assert_eq!(r.key, WorkloadKey::from_workload("shop", "deployment", "web").to_string());
        assert_eq!((r.node.as_str(), r.attached), ("node-1", true));
    }

    #[test]
    fn replica_set_missing_from_cache_is_guessed_from_the_template_hash() {
        let rows = entries_of_pod(&web_pod("198.18.1.2", false), &OwnerCache::default());
        assert_eq!((rows[0].kind.as_str(), rows[0].workload.as_str()), ("Deployment", "web"));
        assert!(!rows[0].attached);
    }

    #[test]
    fn bare_replica_set_without_owner_stays_a_replica_set() {
        let mut rs = web_rs();
        rs.metadata.owner_references = None;
        let rows = entries_of_pod(&web_pod("198.18.1.2", false), &OwnerCache::from_replica_sets([&rs]));
        assert_eq!((rows[0].kind.as_str(), rows[0].workload.as_str()), ("ReplicaSet", "web-5f6c7d8b9"));
    }

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
    fn json_output_is_the_shared_contract_array() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let rows = build_map(&[web_pod("198.18.1.2", true)], &owners);
        let mut out = Vec::new();
        render(&rows, MapFormat::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let key = WorkloadKey::from_workload("shop", "Deployment", "web").to_string();
        assert_eq!(
            v,
            json!([{"ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "web",
                "key": key, "pod": "web-5f6c7d8b9-abcde", "node": "node-1", "attached": true}])
        );
    }

    #[test]
    fn csv_output_has_header_and_quotes_only_when_needed() {
        let mut row = entries_of_pod(&web_pod("198.18.1.2", false), &OwnerCache::default()).remove(0);
        row.node = "odd,node".into();
        let mut out = Vec::new();
        render(&[row.clone()], MapFormat::Csv, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = format!(
            "ip,namespace,kind,workload,key,pod,node,attached\n\
             198.18.1.2,shop,Deployment,web,{},web-5f6c7d8b9-abcde,\"odd,node\",false\n",
            row.key
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn table_output_aligns_columns() {
        let rows = build_map(&[web_pod("198.18.1.2", true)], &OwnerCache::default());
        let mut out = Vec::new();
        render(&rows, MapFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("NAMESPACE"), lines[1].find("shop"));
        assert_eq!(lines[0].find("ATTACHED"), lines[1].find("yes"));
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
