//! `kubectl bpc map`: address -> workload table, so a collector can label each
//! GRE stream (keyed by workload key and source pod IP) and each peer of the
//! captured flows while pod IPs churn: pod IPs, Service ClusterIPs (with the
//! workloads the selector picks) and node InternalIPs.
//!
//! Owners are resolved from one list of ReplicaSets, never one GET per pod:
//! Pod -> ReplicaSet -> Deployment, StatefulSet/DaemonSet/Job directly, and a
//! bare pod is its own workload (kind `Pod`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use bpc_wire::WorkloadKey;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::Error;

pub use crate::sidecar::AGENT_CONTAINER;

/// One row of the map: the shared `kubectl bpc map -o json` contract, defined
/// once in bpc-sim (which reads it with `--map FILE`).
pub use bpc_sim::map::{Backend, MAP_SCHEMA_VERSION, MapEntry, RowType};

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

impl Workload {
    /// The workload as the CLI's typed id, when its kind is one kubectl-bpc knows.
    pub fn id(&self, namespace: &str) -> Option<crate::workload::WorkloadId> {
        let kind = crate::workload::WorkloadKind::from_kind(&self.kind)?;
        Some(crate::workload::WorkloadId { namespace: namespace.to_owned(), kind, name: self.name.clone() })
    }
}

/// The one pod -> workload resolver: ReplicaSet -> owning Deployment and
/// Job -> owning CronJob, per namespace, built from one list call each.
#[derive(Debug, Default, Clone)]
pub struct OwnerCache {
    /// (namespace, replicaset name) -> controller owner (kind, name) if any.
    replica_sets: HashMap<(String, String), Option<(String, String)>>,
    /// (namespace, job name) -> controller owner (a CronJob) if any, for
    /// the Jobs the reader listed.
    jobs: HashMap<(String, String), Option<(String, String)>>,
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

    /// Adds or replaces one Job: its pods belong to the CronJob that owns it.
    pub fn insert_job(&mut self, job: &k8s_openapi::api::batch::v1::Job) {
        let owner =
            controller_of(job.metadata.owner_references.as_ref()).map(|o| (o.kind.clone(), o.name.clone()));
        self.jobs.insert((job.namespace().unwrap_or_default(), job.name_any()), owner);
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
        if owner.kind == "Job"
            && let Some(Some((kind, name))) = self.jobs.get(&(namespace.clone(), owner.name.clone()))
        {
            return Workload { kind: kind.clone(), name: name.clone() };
        }
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
fn selects(selector: Option<&BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
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

fn sort_rows(rows: &mut [MapEntry]) {
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

/// Writes the map in the chosen format.
pub fn render(rows: &[MapEntry], format: MapFormat, out: &mut impl Write) -> Result<(), Error> {
    match format {
        MapFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        MapFormat::Csv => {
            // `type` last: readers of the schema 1 columns keep their positions.
            writeln!(out, "ip,namespace,kind,workload,key,pod,node,attached,type")?;
            for r in rows {
                let fields = [&r.ip, &r.namespace, &r.kind, &r.workload, &r.key, &r.pod, &r.node];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{},{},{}", line.join(","), r.attached, type_name(r.row_type))?;
            }
        }
        MapFormat::Table => {
            let header = ["TYPE", "IP", "NAMESPACE", "KIND", "WORKLOAD", "KEY", "POD", "NODE", "ATTACHED"];
            let body: Vec<[String; 9]> = rows
                .iter()
                .map(|r| {
                    [
                        type_name(r.row_type).to_owned(),
                        r.ip.clone(),
                        r.namespace.clone(),
                        r.kind.clone(),
                        r.workload.clone(),
                        r.key.clone(),
                        if r.row_type == RowType::Service { backends_text(r) } else { r.pod.clone() },
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

fn type_name(t: RowType) -> &'static str {
    match t {
        RowType::Pod => "pod",
        RowType::Service => "service",
        RowType::Node => "node",
    }
}

/// A Service's backends in the table's POD column: `-> Deployment/api,...`.
fn backends_text(r: &MapEntry) -> String {
    if r.backends.is_empty() {
        return "-> (none)".into();
    }
    let names: Vec<String> = r.backends.iter().map(|b| format!("{}/{}", b.kind, b.workload)).collect();
    format!("-> {}", names.join(","))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

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
    pods: BTreeMap<(String, String), PodRows>,
    services: BTreeMap<(String, String), Service>,
    nodes: BTreeMap<String, Node>,
    /// Rows last emitted, per namespace (pods and Services) and for nodes.
    emitted: BTreeMap<String, Rows>,
    emitted_nodes: Rows,
}

/// What a change can affect.
enum Scope {
    Namespace(String),
    Nodes,
    All,
}

/// Rows by (type, address).
type Rows = BTreeMap<(RowType, String), MapEntry>;

/// A pod's labels (for Service selectors) and its rows.
type PodRows = (BTreeMap<String, String>, Vec<MapEntry>);

fn id_of<K: ResourceExt>(o: &K) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

impl MapState {
    fn put_pod(&mut self, pod: &Pod, owners: &OwnerCache) {
        let rows = entries_of_pod(pod, owners);
        if rows.is_empty() {
            self.pods.remove(&id_of(pod));
        } else {
            self.pods.insert(id_of(pod), (pod.labels().clone(), rows));
        }
    }

    /// The rows of one namespace: its pods' and its Services' (whose
    /// selectors only pick pods of their own namespace).
    fn namespace_rows(&self, ns: &str) -> Rows {
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

    fn node_rows(&self) -> Rows {
        self.nodes.values().flat_map(entries_of_node).map(|r| ((r.row_type, r.ip.clone()), r)).collect()
    }

    /// Every row the current objects give, unsorted.
    fn rows(&self) -> Vec<MapEntry> {
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
    fn sync(&mut self, scope: Scope) -> Vec<MapEvent> {
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

use crate::kube_context::scoped_api as apis;

/// Lists Nodes, or none when the user may not (a namespace-scoped role):
/// node rows are a help for labelling, not a reason to fail the map.
async fn list_nodes(client: &Client) -> Result<Option<Vec<Node>>, Error> {
    let api: Api<Node> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
            tracing::debug!("no node rows: {}", s.message);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The Jobs in scope, for their CronJobs: None when the user may not list
/// them (their pods are then labelled with the Job).
async fn list_jobs(client: &Client, namespace: Option<&str>) -> Result<Option<Vec<Job>>, Error> {
    match apis::<Job>(client, namespace).list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
            tracing::debug!("no Job owners: {}", s.message);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lists ReplicaSets, Jobs, pods, Services and Nodes (one call each) and builds the map.
/// `namespace` None means all namespaces.
pub async fn fetch_map(client: &Client, namespace: Option<&str>) -> Result<Vec<MapEntry>, Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let svc_api: Api<Service> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let mut owners = OwnerCache::from_replica_sets(&sets.items);
    for job in list_jobs(client, namespace).await?.unwrap_or_default() {
        owners.insert_job(&job);
    }
    let pods = pod_api.list(&ListParams::default()).await?;
    let services = svc_api.list(&ListParams::default()).await?;
    let nodes = list_nodes(client).await?.unwrap_or_default();
    Ok(build_full_map(&pods.items, &services.items, &nodes, &owners))
}

/// Runs `kubectl bpc map`: prints the map once, or with `--watch` streams
/// changes as JSON lines until the watch ends.
pub async fn run(args: &MapArgs, client: &Client, namespace: Option<&str>) -> Result<(), Error> {
    if !args.watch {
        let rows = fetch_map(client, namespace).await?;
        return render(&rows, args.output, &mut crate::output::stdout());
    }
    watch(client, namespace, |ev| {
        let mut out = crate::output::stdout();
        serde_json::to_writer(&mut out, &ev)?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    })
    .await
}

/// What a secondary watch's objects do to the map.
struct SideRows<K> {
    /// Named in the debug log of a failed watch.
    what: &'static str,
    relist: fn(&mut MapState, &[K]) -> Vec<MapEvent>,
    apply: fn(&mut MapState, &K) -> Vec<MapEvent>,
    delete: fn(&mut MapState, &K) -> Vec<MapEvent>,
}

const SERVICE_ROWS: SideRows<Service> = SideRows {
    what: "service",
    relist: MapState::relist_services,
    apply: MapState::apply_service,
    delete: MapState::delete_service,
};

const NODE_ROWS: SideRows<Node> = SideRows {
    what: "node",
    relist: MapState::relist_nodes,
    apply: MapState::apply_node,
    delete: MapState::delete_node,
};

/// One event of a secondary watch applied to the map; the objects of a
/// (re)list are gathered in `pending` until it is complete.
fn side_event<K>(
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

/// A secondary watch stream (Services, Nodes): it backs off and retries on
/// its own, and never stops the pod stream.
fn side_watch<K>(
    api: Api<K>,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, watcher::Config::default()).default_backoff().boxed()
}

/// Watches pods (and ReplicaSets, to keep the owner cache fresh), Services
/// and Nodes (when the user may list them) and calls `emit` for each map
/// change. Returns when the pod watch stream ends.
pub async fn watch(
    client: &Client,
    namespace: Option<&str>,
    mut emit: impl FnMut(MapEvent) -> Result<(), Error>,
) -> Result<(), Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let svc_api: Api<Service> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let mut owners = OwnerCache::from_replica_sets(&sets.items);
    let jobs = list_jobs(client, namespace).await?;
    for job in jobs.iter().flatten() {
        owners.insert_job(job);
    }
    let mut state = MapState::default();
    let mut pods = watcher(pod_api, watcher::Config::default()).boxed();
    let mut rs_events = watcher(rs_api, watcher::Config::default()).boxed();
    // A CronJob makes its Jobs as it goes: keep them in the owner cache (when
    // the user may list them at all).
    let mut job_events = match jobs {
        Some(_) => watcher(apis::<Job>(client, namespace), watcher::Config::default()).boxed(),
        None => futures::stream::pending().boxed(),
    };
    let mut svc_events = side_watch(svc_api);
    let mut node_events = match list_nodes(client).await? {
        Some(_) => side_watch(Api::<Node>::all(client.clone())),
        None => futures::stream::pending().boxed(),
    };
    let (mut relist, mut svc_relist, mut node_relist) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let events = tokio::select! {
            ev = pods.try_next() => {
                let Some(ev) = ev.map_err(|e| Error::Usage(format!("pod watch failed: {e}")))? else {
                    return Ok(());
                };
                match ev {
                    watcher::Event::Init => { relist.clear(); Vec::new() }
                    watcher::Event::InitApply(p) => { relist.push(p); Vec::new() }
                    watcher::Event::InitDone => state.relist(&std::mem::take(&mut relist), &owners),
                    watcher::Event::Apply(p) => state.apply(&p, &owners),
                    watcher::Event::Delete(p) => state.delete(&p),
                }
            }
            ev = rs_events.next() => {
                // The ReplicaSet watch only refreshes the cache; its failures
                // are retried by the watcher and never stop the pod stream.
                if let Some(Ok(watcher::Event::Apply(rs) | watcher::Event::InitApply(rs))) = ev {
                    owners.insert(&rs);
                }
                Vec::new()
            }
            ev = job_events.next() => {
                if let Some(Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job))) = ev {
                    owners.insert_job(&job);
                }
                Vec::new()
            }
            Some(ev) = svc_events.next() => side_event(&mut state, &mut svc_relist, &SERVICE_ROWS, ev),
            Some(ev) = node_events.next() => side_event(&mut state, &mut node_relist, &NODE_ROWS, ev),
        };
        for e in events {
            emit(e)?;
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
    fn a_cronjobs_pod_belongs_to_the_cronjob_through_its_job() {
        let job: Job =
            serde_json::from_value(json!({"metadata": {"name": "nightly-29000000", "namespace": "ops",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u",
                "controller": true}]}}))
            .unwrap();
        let p = pod(json!({"metadata": {"name": "nightly-29000000-x7k2p", "namespace": "ops",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-29000000", "uid": "j",
                "controller": true}]},
            "spec": {"containers": []}, "status": {"podIP": "198.18.5.5"}}));
        let unknown = OwnerCache::default().workload_of(&p);
        assert_eq!((unknown.kind.as_str(), unknown.name.as_str()), ("Job", "nightly-29000000"));
        let mut owners = OwnerCache::default();
        owners.insert_job(&job);
        let row = &entries_of_pod(&p, &owners)[0];
        assert_eq!((row.kind.as_str(), row.workload.as_str()), ("CronJob", "nightly"));
        assert_eq!(row.key, WorkloadKey::from_workload("ops", "cronjob", "nightly").to_string());
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
            json!([{"type": "pod", "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "web",
                "key": key, "pod": "web-5f6c7d8b9-abcde", "node": "node-1", "attached": true,
                "profile": "standard"}])
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
            "ip,namespace,kind,workload,key,pod,node,attached,type\n\
             198.18.1.2,shop,Deployment,web,{},web-5f6c7d8b9-abcde,\"odd,node\",false,pod\n",
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
        assert!(lines[1].starts_with("pod "), "{text}");
    }

    fn service(name: &str, ips: serde_json::Value, selector: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips, "selector": selector}}))
        .unwrap()
    }

    fn db_pod(ip: &str) -> Pod {
        pod(json!({"metadata": {"name": "db-0", "namespace": "shop", "labels": {"app": "db", "tier": "data"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u",
                    "controller": true}]},
            "spec": {"containers": []}, "status": {"podIP": ip}}))
    }

    fn web_pod_labelled(ip: &str) -> Pod {
        let mut p = web_pod(ip, true);
        p.metadata.labels.as_mut().unwrap().insert("app".into(), "web".into());
        p.metadata.labels.as_mut().unwrap().insert("tier".into(), "data".into());
        p
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
    fn map_rows_read_back_by_bpc_sim_label_services_and_nodes() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let rows = build_full_map(
            &[web_pod_labelled("198.18.1.2")],
            &[service("web", json!(["198.18.9.1"]), json!({"app": "web"}))],
            &[],
            &owners,
        );
        let mut out = Vec::new();
        render(&rows, MapFormat::Json, &mut out).unwrap();
        let m = bpc_sim::map::WorkloadMap::from_json(std::str::from_utf8(&out).unwrap()).unwrap();
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
