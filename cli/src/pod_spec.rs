//! What a pod or pod template, as the API server returns it (typed), says
//! about the `bpc-agent` sidecar: which container it is, its environment,
//! its collectors. The sidecar is built and edited as JSON in
//! [`crate::sidecar`]; these only read.

use bpc_contract::GreProfile;
use bpc_wire::WorkloadKey;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};

use crate::sidecar::{AGENT_CONTAINER, STATUS_ANNOTATION};

/// The agent container of a pod spec, and whether it is a native sidecar
/// (an init container).
pub fn agent_of(spec: &PodSpec) -> Option<(&Container, bool)> {
    if let Some(c) = spec.containers.iter().find(|c| c.name == AGENT_CONTAINER) {
        return Some((c, false));
    }
    spec.init_containers.iter().flatten().find(|c| c.name == AGENT_CONTAINER).map(|c| (c, true))
}

/// The agent container of a pod.
pub fn pod_agent(pod: &Pod) -> Option<&Container> {
    pod.spec.as_ref().and_then(agent_of).map(|(c, _)| c)
}

/// Whether a pod carries the capture sidecar (as a container or a native
/// sidecar init container).
pub fn pod_is_attached(pod: &Pod) -> bool {
    pod_agent(pod).is_some()
}

/// The scheduler's message while it finds no node for the pod (its
/// `PodScheduled` condition False).
pub fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(c.message.clone().unwrap_or_else(|| c.reason.clone().unwrap_or_else(|| "Unschedulable".into())))
}

/// The agent container's resource request `resource` (`cpu`, `memory`), as
/// the pod spec has it (`--cpu`, `--memory` of attach).
pub fn agent_request(pod: &Pod, resource: &str) -> Option<String> {
    let requests = pod_agent(pod)?.resources.as_ref()?.requests.as_ref()?;
    requests.get(resource).map(|q| q.0.clone())
}

/// Whether a pod template carries a sidecar kubectl-bpc attached: the
/// container and the status annotation.
pub fn template_attached(t: &PodTemplateSpec) -> bool {
    let annotated = t
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .is_some_and(|a| a.contains_key(STATUS_ANNOTATION));
    annotated && t.spec.as_ref().and_then(agent_of).is_some()
}

/// A literal environment value of a container.
pub fn env_of(c: &Container, name: &str) -> Option<String> {
    c.env.as_ref()?.iter().find(|e| e.name == name).and_then(|e| e.value.clone())
}

/// The agent's collectors (`BPC_COLLECTOR`), as written: addresses or names.
pub fn collectors_of(agent: &Container) -> Vec<String> {
    env_of(agent, bpc_contract::env::COLLECTOR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The GRE key a pod's agent sends, and its profile: its `BPC_KEY` if set,
/// else `workload_key`, as that profile sends it (netis: the keybit,
/// [`WorkloadKey::as_sent`]). What a receiver reports the stream under.
pub fn sent_key(agent: &Container, workload_key: WorkloadKey) -> (WorkloadKey, GreProfile) {
    let profile: GreProfile =
        env_of(agent, bpc_contract::env::GRE_PROFILE).and_then(|p| p.parse().ok()).unwrap_or_default();
    let key = env_of(agent, bpc_contract::env::KEY).and_then(|k| k.parse().ok()).unwrap_or(workload_key);
    (key.as_sent(profile.into()), profile)
}

/// The id a pod's stream arrives under at a receiver: the key as sent
/// ([`sent_key`]) in GRE, the VNI in VXLAN, the session in ERSPAN (its
/// `BPC_VNI` / `BPC_SESSION` when set, else derived from the key:
/// [`bpc_wire::Encap::stream_id`]).
pub fn stream_id(agent: &Container, workload_key: WorkloadKey) -> WorkloadKey {
    let encap: bpc_wire::Encap = env_of(agent, bpc_contract::env::ENCAP)
        .and_then(|e| e.parse::<bpc_contract::Encap>().ok())
        .unwrap_or_default()
        .into();
    let explicit = |name: &str| env_of(agent, name).and_then(|v| v.parse::<WorkloadKey>().ok());
    let (key, profile) = sent_key(agent, workload_key);
    match encap {
        bpc_wire::Encap::Gre => key,
        bpc_wire::Encap::Vxlan => {
            explicit(bpc_contract::env::VNI).unwrap_or(WorkloadKey(encap.stream_id(key, profile.into())))
        }
        bpc_wire::Encap::ErspanII | bpc_wire::Encap::ErspanIII => {
            explicit(bpc_contract::env::SESSION).unwrap_or(WorkloadKey(encap.stream_id(key, profile.into())))
        }
    }
}

/// Whether the agent streams to `collector` already.
pub fn sends_to(agent: &Container, collector: &str) -> bool {
    collectors_of(agent).iter().any(|c| c == collector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_agent_is_found_as_a_container_or_as_a_native_sidecar() {
        let plain =
            pod(serde_json::json!({"spec": {"containers": [{"name": "app"}, {"name": "bpc-agent"}]}}));
        assert_eq!(
            plain.spec.as_ref().and_then(agent_of).map(|(c, init)| (c.name.as_str(), init)),
            Some(("bpc-agent", false))
        );
        let native = pod(serde_json::json!({"spec": {"containers": [{"name": "app"}],
            "initContainers": [{"name": "bpc-agent", "restartPolicy": "Always"}]}}));
        assert_eq!(native.spec.as_ref().and_then(agent_of).map(|(_, init)| init), Some(true));
        assert!(!pod_is_attached(&pod(serde_json::json!({"spec": {"containers": [{"name": "app"}]}}))));
    }

    #[test]
    fn the_key_sent_is_the_agents_key_or_the_workloads_as_its_profile_sends_it() {
        let agent = |env: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({"name": "bpc-agent", "env": env})).unwrap()
        };
        let w = WorkloadKey(0x773f_9626);
        assert_eq!(sent_key(&agent(serde_json::json!([])), w), (w, GreProfile::Standard));
        let netis = agent(serde_json::json!([{"name": "BPC_GRE_PROFILE", "value": "netis"}]));
        assert_eq!(sent_key(&netis, w), (WorkloadKey(0x073f_9626), GreProfile::Netis));
        let keyed = agent(serde_json::json!([{"name": "BPC_KEY", "value": "0x00000010"},
            {"name": "BPC_GRE_PROFILE", "value": "netis"}]));
        assert_eq!(sent_key(&keyed, w), (WorkloadKey(0x10), GreProfile::Netis));
    }

    #[test]
    fn the_stream_id_is_the_vni_or_the_session_of_the_key_unless_set() {
        let agent = |env: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({"name": "bpc-agent", "env": env})).unwrap()
        };
        let w = WorkloadKey(0x773f_9626);
        assert_eq!(stream_id(&agent(serde_json::json!([])), w), w);
        let vxlan = agent(serde_json::json!([{"name": "BPC_ENCAP", "value": "vxlan"}]));
        assert_eq!(stream_id(&vxlan, w), WorkloadKey(0x3f_9626));
        let vni = agent(
            serde_json::json!([{"name": "BPC_ENCAP", "value": "vxlan"}, {"name": "BPC_VNI", "value": "42"}]),
        );
        assert_eq!(stream_id(&vni, w), WorkloadKey(42));
        let erspan = agent(serde_json::json!([{"name": "BPC_ENCAP", "value": "erspan-iii"}]));
        assert_eq!(stream_id(&erspan, w), WorkloadKey(0x226));
    }

    #[test]
    fn collectors_are_the_trimmed_non_empty_entries_of_bpc_collector() {
        let p = pod(serde_json::json!({"spec": {"containers": [{"name": "bpc-agent",
            "env": [{"name": "BPC_COLLECTOR", "value": "198.18.0.2, collector.obs.svc,"}]}]}}));
        let agent = pod_agent(&p).unwrap();
        assert_eq!(collectors_of(agent), ["198.18.0.2", "collector.obs.svc"]);
        assert!(sends_to(agent, "collector.obs.svc") && !sends_to(agent, "198.18.0.9"));
    }
}
