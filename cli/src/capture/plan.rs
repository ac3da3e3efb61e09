//! The pre-flight of a capture and its one write: each pod's container
//! planned and dry-run by the API server, then added.

use bpc_contract::env;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::Capture;
use super::container::{capture_container, sidecar_collectors, without_gre_to};
use super::pods::{host_network, resolve_pods};
use crate::Error;
use crate::capabilities::CapabilityPlanner;
use crate::kube_context::{FIELD_MANAGER, Kube};
use crate::map::OwnerCache;
use crate::workload::WorkloadId;

/// A pod to capture, checked and with its container planned.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID when it was read.
    pub uid: String,
    /// The ephemeral container.
    pub container: Value,
    /// The workload the pod belongs to, when kubectl-bpc knows its kind.
    pub workload: Option<WorkloadId>,
    /// The pod's addresses and its name, for the pcapng's Name Resolution Block.
    pub hosts: Vec<(std::net::IpAddr, String)>,
}

impl Planned {
    /// The container's name.
    pub fn container_name(&self) -> &str {
        self.container["name"].as_str().unwrap_or_default()
    }

    /// The strategic merge patch of the `ephemeralcontainers` subresource.
    pub fn patch(&self) -> Value {
        json!({"spec": {"ephemeralContainers": [self.container]}})
    }

    /// The capture starts by itself instead of waiting for the plugin's start
    /// byte on stdin: for a caller that streams to a collector and does not
    /// attach (`verify --ephemeral`). `--duration` still ends it.
    pub fn without_stdin_control(mut self) -> Planned {
        if let Some(env) = self.container["env"].as_array_mut() {
            env.retain(|e| e["name"] != env::STDIN_CONTROL);
        }
        if let Some(fields) = self.container.as_object_mut() {
            fields.shift_remove("stdin");
            fields.shift_remove("stdinOnce");
        }
        self
    }
}

fn random_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:05x}", (nanos ^ std::process::id().rotate_left(16)) & 0xf_ffff)
}

/// The refusal of an ephemeral container patch, in words that say what to do.
fn patch_refused(e: kube::Error, pod: &str, namespace: &str, dry_run: bool) -> Error {
    let when = if dry_run { "the server dry run of " } else { "" };
    match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("ephemeralcontainers") => {
            Error::Usage(format!(
                "pod/{pod} in namespace {namespace}: {when}adding the capture container is forbidden: {}; \
                 capture needs the RBAC verb 'patch' on pods/ephemeralcontainers (check with: kubectl auth \
                 can-i patch pods --subresource=ephemeralcontainers -n {namespace})",
                s.message
            ))
        }
        kube::Error::Api(s) if s.code == 404 => Error::Usage(format!(
            "pod/{pod} in namespace {namespace}: {when}the ephemeral container patch found nothing ({}): the \
             pod is gone, or the API server has no pods/ephemeralcontainers subresource (Kubernetes 1.25+ \
             is needed)",
            s.message
        )),
        kube::Error::Api(s) => Error::Usage(format!(
            "pod/{pod} in namespace {namespace}: the API server refused the capture container ({} {}): {}",
            s.code, s.reason, s.message
        )),
        other => Error::Kube(other),
    }
}

fn patch_params(dry_run: bool) -> PatchParams {
    PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Pre-flight, before anything is written: the pods are Running and not on
/// the host network, the namespace's Pod Security level and the nodes'
/// runtime allow a capability mode, and the API server accepts the
/// ephemeral container in a dry run (dryRun=All: admission, Pod Security
/// and validation included). Returns the planned pods.
pub async fn plan(kube: &Kube, capture: &Capture) -> Result<Vec<Planned>, Error> {
    let pods = resolve_pods(kube, &capture.pods).await?;
    for (p, _) in &pods {
        if host_network(p) {
            return Err(Error::Usage(format!(
                "pod/{} uses hostNetwork: a capture there would record the whole node's traffic; capture a \
                 pod with its own network namespace",
                p.metadata.name.as_deref().unwrap_or_default()
            )));
        }
    }
    let mut planner = CapabilityPlanner::new(capture.capabilities).quiet(capture.quiet);
    let choice = planner.choose(&kube.client, &kube.namespace).await.map_err(|e| match e {
        // Nothing was written: a refused mode is a configuration error here.
        Error::Workload(m) => Error::Usage(m),
        other => other,
    })?;
    let base = capture.id.clone().unwrap_or_else(random_id);
    let mut planned = Vec::new();
    for (i, (p, workload)) in pods.iter().enumerate() {
        let id = if pods.len() > 1 && capture.id.is_some() { format!("{base}-{i}") } else { base.clone() };
        // A sidecar in the pod streams GRE too: captured, it would be sent to
        // our collector, where the sidecar captures it again, and so on.
        let sidecar = sidecar_collectors(p);
        let container = if sidecar.is_empty() {
            capture_container(capture, workload.as_ref(), &kube.namespace, choice.mode, &id)
        } else {
            let mut a = capture.clone();
            a.agent.filter = Some(without_gre_to(capture.agent.filter.as_deref(), &sidecar));
            capture_container(&a, workload.as_ref(), &kube.namespace, choice.mode, &id)
        };
        let plan = Planned {
            namespace: kube.namespace.clone(),
            pod: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            container,
            workload: workload.clone(),
            hosts: crate::map::entries_of_pod(p, &OwnerCache::default())
                .iter()
                .filter_map(bpc_receiver::names::host_of)
                .collect(),
        };
        let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
        api.patch_ephemeral_containers(&plan.pod, &patch_params(true), &Patch::Strategic(plan.patch()))
            .await
            .map_err(|e| patch_refused(e, &plan.pod, &plan.namespace, true))?;
        planned.push(plan);
    }
    Ok(planned)
}

/// Adds the planned container to its pod (the real patch).
pub async fn add_container(kube: &Kube, plan: &Planned) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
    api.patch_ephemeral_containers(&plan.pod, &patch_params(false), &Patch::Strategic(plan.patch()))
        .await
        .map_err(|e| patch_refused(e, &plan.pod, &plan.namespace, false))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_nobody_attaches_to_starts_by_itself() {
        let plan = Planned {
            namespace: "shop".into(),
            pod: "web-1".into(),
            uid: "u".into(),
            workload: None,
            hosts: Vec::new(),
            container: json!({"name": "bpc-capture-x", "stdin": true, "stdinOnce": true,
                "env": [{"name": "BPC_STDIN_CONTROL", "value": "true"}, {"name": "BPC_DURATION", "value": "60000ms"}]}),
        }
        .without_stdin_control();
        assert_eq!(plan.container["env"], json!([{"name": "BPC_DURATION", "value": "60000ms"}]));
        assert!(plan.container.get("stdin").is_none() && plan.container.get("stdinOnce").is_none());
    }
}
