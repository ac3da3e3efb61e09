//! The one pod -> workload resolver: a pod's owner chain, through the
//! ReplicaSets and Jobs the reader listed or watches.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

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

pub(super) fn controller_of(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use bpc_wire::WorkloadKey;

    use k8s_openapi::api::batch::v1::Job;

    use super::*;
    use crate::map::fixture::*;
    use crate::map::*;

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
}
