//! One workload changed: the read-plan-write cycle of attach and detach,
//! retried on conflict, with the admission pre-flight of attach.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, ObjectMeta, TypeMeta};
use serde_json::Value;

use super::targets::template;
use super::{AttachArgs, CONFLICT_ATTEMPTS, Done, DryRun, api_error};
use crate::Error;
use crate::capabilities::CapabilityPlanner;
use crate::kube_context::{FIELD_MANAGER, Kube};
use crate::sidecar::{self, Change, Sidecar, SidecarForm};
use crate::workload::{KindApi, WorkloadId, WorkloadKind};

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn object_value(kind: WorkloadKind, o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    let ar = kind.api_resource();
    if v.get("apiVersion").is_none() {
        v["apiVersion"] = Value::String(ar.api_version);
        v["kind"] = Value::String(ar.kind);
    }
    v
}

fn with_template(kind: WorkloadKind, object: &Value, template: &Value) -> Value {
    let mut v = object.clone();
    if let Some(t) = v.pointer_mut(kind.template_pointer()) {
        *t = template.clone();
    }
    v
}

/// Server-side dry run of a Pod made from `template`: Pod Security and
/// other admission checks reject Pods, not workloads, so this is the only
/// way to learn before the rollout that the sidecar will be refused.
/// Returns the refusal message, or `None` when admitted (or when the user
/// may not create pods, which only skips the check).
pub async fn dry_run_pod(
    client: &kube::Client,
    id: &WorkloadId,
    template: &Value,
) -> Result<Option<String>, Error> {
    let ar = ApiResource::erase::<Pod>(&());
    let api = kube::Api::<DynamicObject>::namespaced_with(client.clone(), &id.namespace, &ar);
    let meta = template.get("metadata").cloned().unwrap_or(Value::Null);
    let pod = DynamicObject {
        types: Some(TypeMeta { api_version: "v1".into(), kind: "Pod".into() }),
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-bpc-preflight-", id.name)),
            namespace: Some(id.namespace.clone()),
            labels: serde_json::from_value(meta["labels"].clone()).unwrap_or_default(),
            annotations: serde_json::from_value(meta["annotations"].clone()).unwrap_or_default(),
            ..Default::default()
        },
        data: serde_json::json!({"spec": template.get("spec").cloned().unwrap_or(Value::Null)}),
    };
    let pp = PostParams { dry_run: true, field_manager: Some(FIELD_MANAGER.into()) };
    match api.create(&pp, &pod).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("cannot create resource") => {
            eprintln!(
                "note: {id}: no permission to dry-run pods in namespace {}; skipped the admission pre-flight",
                id.namespace
            );
            Ok(None)
        }
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => Ok(Some(s.message.clone())),
        Err(e) => Err(api_error(e, "create (dry run)", id)),
    }
}

/// What to do about an admission refusal of the pod with the sidecar, by the
/// policy that refused it (the message names it).
fn refusal_hint(refusal: &str) -> &'static str {
    if refusal.contains("exceeded quota") {
        "the sidecar's resources do not fit the namespace's ResourceQuota: lower --cpu-limit/--memory-limit or raise the quota"
    } else if refusal.contains("PodSecurity") {
        "see --capabilities, or ask for the namespace's policy to allow NET_RAW"
    } else {
        "the refusal above names the policy (admission webhook, LimitRange, ...) the sidecar must satisfy"
    }
}

fn patch_params(dry_run: DryRun) -> PatchParams {
    PatchParams {
        dry_run: dry_run == DryRun::Server,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Attaches (or updates, or leaves as is) the sidecar of one workload.
pub async fn attach_one(
    kube: &Kube,
    id: &WorkloadId,
    mut object: DynamicObject,
    args: &AttachArgs,
    form: SidecarForm,
    planner: &mut CapabilityPlanner,
) -> Result<Done, Error> {
    let api = id.kind.api(&kube.client, &id.namespace);
    let choice = planner.choose(&kube.client, &id.namespace).await?;
    let sidecar = Sidecar {
        workload: id.clone(),
        options: args.flags.options(),
        capabilities: choice.mode,
        allow_host_network: args.allow_host_network,
        form,
    };
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let before = object_value(id.kind, &object);
        let current = template(id.kind, &object).cloned().ok_or_else(|| {
            Error::Workload(format!(
                "{id} in namespace {} has no pod template ({})",
                id.namespace,
                id.kind.template_pointer()
            ))
        })?;
        let mut desired = current.clone();
        let injected = sidecar::inject(&mut desired, &sidecar).map_err(|e| Error::Workload(e.to_string()))?;
        let after = with_template(id.kind, &before, &desired);
        let action = Change::from(injected);
        if action == Change::Unchanged {
            return Ok(Done { workload: id.clone(), action, object: after, before });
        }
        if attempt == 1
            && let Some(refusal) = dry_run_pod(&kube.client, id, &desired).await?
        {
            // Not our doing if the template without the sidecar is refused too.
            if dry_run_pod(&kube.client, id, &current).await?.is_none() {
                return Err(Error::Workload(format!(
                    "{id} in namespace {}: the API server would refuse its pods with the sidecar: {refusal}\n  \
                     nothing was changed; {}",
                    id.namespace,
                    refusal_hint(&refusal)
                )));
            }
            eprintln!("note: {id}: pods are refused even without the sidecar ({refusal}); attaching anyway");
        }
        if args.change.dry_run == DryRun::Client {
            return Ok(Done { workload: id.clone(), action, object: after, before });
        }
        let patch =
            sidecar::attach_patch(id.kind, &current, &desired, object.metadata.resource_version.as_deref());
        match api.patch(&id.name, &patch_params(args.change.dry_run), &Patch::Strategic(&patch)).await {
            Ok(o) => {
                return Ok(Done { workload: id.clone(), action, object: object_value(id.kind, &o), before });
            }
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                object = api.get(&id.name).await.map_err(|e| api_error(e, "get", id))?;
            }
            Err(e) => return Err(api_error(e, "patch", id)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Detaches the sidecar of one workload: removes exactly what its status
/// annotation lists.
pub async fn detach_one(
    kube: &Kube,
    id: &WorkloadId,
    mut object: DynamicObject,
    dry_run: DryRun,
) -> Result<Done, Error> {
    let api = id.kind.api(&kube.client, &id.namespace);
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let before = object_value(id.kind, &object);
        let current = template(id.kind, &object).cloned().unwrap_or(Value::Null);
        let mut desired = current.clone();
        let outcome = sidecar::uninject(&mut desired, id).map_err(|e| Error::Workload(e.to_string()))?;
        let after = with_template(id.kind, &before, &desired);
        let record = match (outcome, sidecar::attached_record(&current)?) {
            (sidecar::Uninjected::Removed, Some(record)) => record,
            _ => {
                return Ok(Done { workload: id.clone(), action: Change::NotAttached, object: after, before });
            }
        };
        if dry_run == DryRun::Client {
            return Ok(Done { workload: id.clone(), action: Change::Removed, object: after, before });
        }
        let patch = sidecar::detach_patch(id.kind, &record, object.metadata.resource_version.as_deref());
        match api.patch(&id.name, &patch_params(dry_run), &Patch::Strategic(&patch)).await {
            Ok(o) => {
                return Ok(Done {
                    workload: id.clone(),
                    action: Change::Removed,
                    object: object_value(id.kind, &o),
                    before,
                });
            }
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                object = api.get(&id.name).await.map_err(|e| api_error(e, "get", id))?;
            }
            Err(e) => return Err(api_error(e, "patch", id)),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_hint_names_what_to_change_for_the_policy_that_refused() {
        let quota = "pods \"web-x\" is forbidden: exceeded quota: mem, requested: limits.memory=128Mi";
        assert!(refusal_hint(quota).contains("ResourceQuota"));
        let pss =
            "pods \"web-x\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities";
        assert!(refusal_hint(pss).contains("--capabilities"));
        assert!(refusal_hint("admission webhook \"x\" denied the request").contains("names the policy"));
    }
}
