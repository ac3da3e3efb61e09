//! What verify reads from the workload, and the patch that adds its sink
//! to the sidecar's collectors and takes it out again.

use bpc_contract::env;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::Error;
use crate::pod_spec::{agent_of, env_of};
use crate::sidecar::{AGENT_CONTAINER, MAX_COLLECTORS, STATUS_ANNOTATION, VERIFY_ANNOTATION};
use crate::workload::{KindApi, WorkloadKind, WorkloadRef};

/// What verify reads from the workload before changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The sidecar's `BPC_COLLECTOR` value as attached.
    pub collectors: String,
    /// The status annotation as attached (restored verbatim).
    pub status_annotation: Option<String>,
    /// Whether the agent is a native sidecar (init container).
    pub init_container: bool,
    /// `matchLabels` of the workload's selector, as a label selector.
    pub selector: String,
    /// Replicas wanted (for a DaemonSet: pods scheduled).
    pub desired: i32,
}

/// Reads a target from a workload's pod template.
pub fn target_of(
    kind: WorkloadKind,
    meta: &kube::api::ObjectMeta,
    template: &PodTemplateSpec,
    match_labels: Option<&std::collections::BTreeMap<String, String>>,
    desired: i32,
) -> Result<Target, Error> {
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let workload = format!("{}/{name}", kind.lower());
    let not_attached = || {
        Error::Usage(format!(
            "{workload} in namespace {namespace} is not attached: run kubectl bpc attach {workload} -n {namespace} \
             --collector ADDR first"
        ))
    };
    let (agent, init_container) = template.spec.as_ref().and_then(agent_of).ok_or_else(not_attached)?;
    let collectors = env_of(agent, env::COLLECTOR).unwrap_or_default();
    let status_annotation = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .cloned();
    let selector = match_labels
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(Error::Usage(format!(
            "{workload} has no matchLabels selector; verify cannot find its pods"
        )));
    }
    Ok(Target { kind, name, namespace, collectors, status_annotation, init_container, selector, desired })
}

/// Fetches the workload and reads its target.
pub async fn read_target(client: &Client, namespace: &str, workload: &str) -> Result<Target, Error> {
    let named = WorkloadRef::parse(workload)?;
    let kind = named.kind_or_deployment();
    if !matches!(kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet) {
        return Err(Error::Usage(format!(
            "verify proves a workload whose pods a rollout replaces (deploy/NAME, sts/NAME, ds/NAME); \
             '{workload}' is a {}: for its running pods use kubectl bpc verify --ephemeral or kubectl bpc capture",
            kind.as_str()
        )));
    }
    let object = kind.api(client, namespace).get(&named.name).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => {
            Error::Usage(format!("workload '{workload}' not found in namespace {namespace}"))
        }
        other => Error::Kube(other),
    })?;
    let spec = |pointer: &str| object.data.pointer(pointer).cloned().unwrap_or(Value::Null);
    let template: PodTemplateSpec = serde_json::from_value(spec("/spec/template")).unwrap_or_default();
    let match_labels: Option<std::collections::BTreeMap<String, String>> =
        serde_json::from_value(spec("/spec/selector/matchLabels")).ok();
    let desired = crate::rollout::counts(kind, &object.data).desired;
    target_of(kind, &object.metadata, &template, match_labels.as_ref(), desired)
}

/// The collector list with the sink added; refuses a fifth collector.
pub fn with_sink(collectors: &str, sink: &str) -> Result<String, Error> {
    let mut list: Vec<&str> = collectors.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    if list.contains(&sink) {
        return Err(Error::Usage(format!(
            "{sink} is already a collector of this workload; verify needs a sink of its own"
        )));
    }
    if list.len() >= MAX_COLLECTORS {
        return Err(Error::Usage(format!(
            "the workload already has {MAX_COLLECTORS} collectors ({collectors}), the agent's maximum; \
             verify needs one more slot"
        )));
    }
    list.push(sink);
    Ok(list.join(","))
}

/// The status annotation with its collector list replaced (top-level or
/// under `options`, as `collectors` array or `collector` string); other
/// shapes are returned unchanged.
pub fn annotation_with_collectors(annotation: &str, collectors: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(annotation) else { return annotation.to_owned() };
    let list: Vec<Value> = collectors.split(',').map(|c| Value::String(c.to_owned())).collect();
    let mut changed = false;
    for scope in ["", "options"] {
        let target = if scope.is_empty() { Some(&mut v) } else { v.get_mut(scope) };
        let Some(Value::Object(map)) = target else { continue };
        if let Some(slot) = map.get_mut("collectors") {
            *slot = Value::Array(list.clone());
            changed = true;
        }
        if let Some(slot @ Value::String(_)) = map.get_mut("collector") {
            *slot = Value::String(collectors.to_owned());
            changed = true;
        }
    }
    if changed { v.to_string() } else { annotation.to_owned() }
}

/// Strategic merge patch setting the agent's `BPC_COLLECTOR` (merged by
/// container name and env name, so nothing else changes), the status
/// annotation and the verify annotation (null removes it).
pub fn collector_patch(
    target: &Target,
    collectors: &str,
    status_annotation: Option<&str>,
    verify_sink: Option<&str>,
) -> Value {
    let containers = if target.init_container { "initContainers" } else { "containers" };
    let mut annotations = serde_json::Map::new();
    if let Some(a) = status_annotation {
        annotations.insert(STATUS_ANNOTATION.into(), json!(a));
    }
    annotations.insert(VERIFY_ANNOTATION.into(), json!(verify_sink));
    json!({"spec": {"template": {
        "metadata": {"annotations": annotations},
        "spec": {containers: [{"name": AGENT_CONTAINER, "env": [{"name": env::COLLECTOR, "value": collectors}]}]}
    }}})
}

pub(super) async fn patch(client: &Client, target: &Target, body: &Value) -> Result<(), kube::Error> {
    let api = target.kind.api(client, &target.namespace);
    api.patch(&target.name, &PatchParams::default(), &Patch::Strategic(body)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_is_appended_and_a_fifth_collector_refused() {
        assert_eq!(with_sink("198.18.0.2", "198.18.0.9").unwrap(), "198.18.0.2,198.18.0.9");
        assert_eq!(with_sink("", "198.18.0.9").unwrap(), "198.18.0.9");
        assert!(with_sink("a,b,c,d", "e").is_err());
        assert!(with_sink("a,e", "e").is_err());
    }

    #[test]
    fn status_annotation_collectors_are_replaced_where_found() {
        let a = r#"{"containers":["bpc-agent"],"options":{"collectors":["198.18.0.2"],"filter":""}}"#;
        let v: Value = serde_json::from_str(&annotation_with_collectors(a, "198.18.0.2,198.18.0.9")).unwrap();
        assert_eq!(v["options"]["collectors"], json!(["198.18.0.2", "198.18.0.9"]));
        assert_eq!(v["containers"], json!(["bpc-agent"]));
        let b = r#"{"collector":"198.18.0.2"}"#;
        let v: Value = serde_json::from_str(&annotation_with_collectors(b, "198.18.0.2,x")).unwrap();
        assert_eq!(v["collector"], "198.18.0.2,x");
        assert_eq!(annotation_with_collectors("not json", "x"), "not json");
    }

    #[test]
    fn patch_targets_init_container_for_native_sidecars() {
        let t = Target {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            namespace: "shop".into(),
            collectors: "a".into(),
            status_annotation: None,
            init_container: true,
            selector: "app=web".into(),
            desired: 1,
        };
        let p = collector_patch(&t, "a,b", None, None);
        assert_eq!(p["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"], "a,b");
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][VERIFY_ANNOTATION], Value::Null);
    }
}
