//! Which pods a capture runs in: the running pods its targets or selector
//! name, each with the workload it belongs to.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{Selection, Target};
use crate::Error;
use crate::kube_context::Kube;
use crate::map::OwnerCache;
use crate::workload::{KindApi, WorkloadId};

/// The workload a pod belongs to, by the one resolver ([`OwnerCache`], here
/// without a cache: a ReplicaSet's Deployment from the pod-template-hash
/// suffix, so no read of the ReplicaSet is needed); None for an owner of a
/// kind kubectl-bpc does not know.
pub fn workload_of(pod: &Pod) -> Option<WorkloadId> {
    let namespace = pod.metadata.namespace.clone()?;
    OwnerCache::default().workload_of(pod).id(&namespace)
}

fn with_workload(pod: Pod) -> (Pod, Option<WorkloadId>) {
    let workload = workload_of(&pod);
    (pod, workload)
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Unknown")
}

pub(super) fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn pod_api_error(e: kube::Error, verb: &str, what: &str, namespace: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            Error::Usage(format!("{what} not found in namespace {namespace}: check the name and -n"))
        }
        kube::Error::Api(s) if s.code == 403 => Error::Usage(format!(
            "{what} in namespace {namespace}: forbidden: {}; capture needs the RBAC verb '{verb}' \
             (check with: kubectl auth can-i {verb} -n {namespace})",
            s.message
        )),
        kube::Error::Api(s) => {
            Error::Usage(format!("{what} in namespace {namespace}: {verb}: {}", s.message))
        }
        other => Error::Kube(other),
    }
}

/// The pods the targets name, each with the workload it belongs to.
/// `pod/NAME` must be Running; a workload or selector contributes its
/// Running pods and must have at least one.
pub async fn resolve_pods(kube: &Kube, pods: &Selection) -> Result<Vec<(Pod, Option<WorkloadId>)>, Error> {
    let ns = &kube.namespace;
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), ns);
    let mut out: Vec<(Pod, Option<WorkloadId>)> = Vec::new();
    let running_of = |list: Vec<Pod>, what: &str| -> Result<Vec<Pod>, Error> {
        let total = list.len();
        // A terminating pod still reports Running until its containers end:
        // a capture there would be cut short by the pod's own deletion.
        let running: Vec<Pod> = list
            .into_iter()
            .filter(|p| phase(p) == "Running" && p.metadata.deletion_timestamp.is_none())
            .collect();
        if running.is_empty() {
            return Err(Error::Usage(format!(
                "{what} in namespace {ns} has no Running pod ({total} pod(s) in other phases): capture needs a \
                 Running pod"
            )));
        }
        Ok(running)
    };
    let list = |selector: String| {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| pod_api_error(e, "list pods", &format!("selector {selector}"), ns))
        }
    };
    let targets = match pods {
        Selection::Selector(selector) => {
            let running = running_of(list(selector.clone()).await?.items, &format!("selector {selector}"))?;
            return Ok(running.into_iter().map(with_workload).collect());
        }
        Selection::Targets(targets) => targets,
    };
    for t in targets {
        match t {
            Target::Pod(name) => {
                let p = api
                    .get(name)
                    .await
                    .map_err(|e| pod_api_error(e, "get pods", &format!("pod/{name}"), ns))?;
                if phase(&p) != "Running" {
                    return Err(Error::Usage(format!(
                        "pod/{name} in namespace {ns} is {}, not Running: capture needs a Running pod",
                        phase(&p)
                    )));
                }
                if p.metadata.deletion_timestamp.is_some() {
                    return Err(Error::Usage(format!(
                        "pod/{name} in namespace {ns} is terminating: a capture there would end with the pod; \
                         capture its replacement, or the workload"
                    )));
                }
                out.push(with_workload(p));
            }
            Target::Workload(r) => {
                let kind = r.kind_or_deployment();
                let id = WorkloadId { namespace: ns.clone(), kind, name: r.name.clone() };
                let o = kind.api(&kube.client, ns).get(&r.name).await.map_err(|e| {
                    pod_api_error(e, &format!("get {}", kind.resource()), &id.to_string(), ns)
                })?;
                let labels = o.data.pointer("/spec/selector/matchLabels").and_then(Value::as_object);
                let Some(labels) = labels.filter(|l| !l.is_empty()) else {
                    return Err(Error::Usage(format!(
                        "{id} has no matchLabels selector to find its pods by"
                    )));
                };
                let selector: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
                for p in running_of(list(selector.join(",")).await?.items, &id.to_string())? {
                    out.push((p, Some(id.clone())));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(p, _)| seen.insert(p.metadata.name.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_replicaset_pod_belongs_to_its_deployment() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-7d4b9c8f5-x2k9p", "namespace": "shop",
                "labels": {"pod-template-hash": "7d4b9c8f5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f5",
                    "uid": "u", "controller": true}]}
        }))
        .unwrap();
        assert_eq!(workload_of(&pod).unwrap().path(), "shop/deployment/web");
    }
}
