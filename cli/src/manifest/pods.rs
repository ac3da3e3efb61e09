//! Objects that hold pods but that inject leaves as they are: each is named
//! on standard error with the reason, so that "exit 0" never hides a
//! workload that still runs without the sidecar.

use serde_json::Value;

/// Kinds that hold pods, with why inject leaves them unchanged. A kind
/// that inject learns to edit is matched before this table is consulted.
/// (Deployments, StatefulSets, DaemonSets, CronJobs, Jobs and Pods are
/// edited: [`crate::workload::WorkloadKind`].)
const HOLDERS: &[(&str, &str)] = &[
    (
        "ReplicaSet",
        "a ReplicaSet is normally owned by a Deployment, which would replace its template: inject the Deployment",
    ),
    ("ReplicationController", "ReplicationControllers are not supported: use a Deployment"),
    ("PodTemplate", "a PodTemplate is not a workload: nothing runs from it until something copies it"),
];

/// Whether an object of another kind holds a pod spec, where the common
/// custom workloads (Argo Rollouts, OpenKruise, Knative...) keep theirs.
fn holds_pod_spec(object: &Value) -> bool {
    [
        "/spec/template/spec/containers",
        "/spec/jobTemplate/spec/template/spec/containers",
        "/spec/containers",
        "/template/spec/containers",
    ]
    .iter()
    .any(|p| object.pointer(p).is_some_and(Value::is_array))
}

/// Why `object` could hold pods and is left unchanged, or None when it
/// holds none. Called for objects that are not workloads inject edits.
pub fn left_unchanged(object: &Value) -> Option<String> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("(no name)");
    let reason = HOLDERS.iter().find(|(k, _)| *k == kind).map(|(_, r)| (*r).to_owned()).or_else(|| {
        holds_pod_spec(object).then(|| {
            "it holds a pod spec, but inject edits Deployments, StatefulSets and DaemonSets of apps/v1 only".to_owned()
        })
    })?;
    Some(format!("{kind} {name} could run pods and is left unchanged: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_holding_kinds_and_custom_workloads_are_named_with_a_reason() {
        let rs = json!({"kind": "ReplicaSet", "metadata": {"name": "web-5d4"}});
        assert!(left_unchanged(&rs).unwrap().contains("ReplicaSet web-5d4 could run pods"), "{rs}");
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
            "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        assert!(left_unchanged(&rollout).unwrap().contains("holds a pod spec"));
        assert_eq!(left_unchanged(&json!({"kind": "ConfigMap", "metadata": {"name": "c"}})), None);
    }
}
