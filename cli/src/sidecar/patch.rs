//! The strategic merge patches of the live path: attach's and detach's,
//! naming only the agent container and the annotations.

use serde_json::{Map, Value, json};

use super::record::{AttachRecord, status_annotation};
use super::{AGENT_CONTAINER, STATUS_ANNOTATION, SidecarForm, VERIFY_ANNOTATION};
use crate::workload::WorkloadKind;

/// The strategic merge patch that turns the live workload of `kind` whose
/// template is `current` into one whose template is `desired` (from
/// [`inject`]): it names only the agent container, in the list(s) it leaves
/// or enters, and the status annotation. An added agent takes its place in
/// the list (`$setElementOrder`: first init container, or last container); a
/// replaced one gets `$patch: replace` on each of its maps and lists so that
/// options dropped since the last attach do not linger; one that moved to
/// the other list (the form changed) is deleted from the old one.
/// `resource_version` makes a concurrent change a 409.
pub fn attach_patch(
    kind: WorkloadKind,
    current: &Value,
    desired: &Value,
    resource_version: Option<&str>,
) -> Value {
    let annotation = status_annotation(desired).map(|s| Value::String(s.to_owned())).unwrap_or(Value::Null);
    let mut spec = Map::new();
    for list in [SidecarForm::Native.list(), SidecarForm::Container.list()] {
        let items = |t: &Value| t.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned();
        let agent_in = |t: &Value| {
            items(t)
                .into_iter()
                .flatten()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(AGENT_CONTAINER))
        };
        match (agent_in(current), agent_in(desired)) {
            (Some(_), Some(agent)) => {
                spec.insert(list.into(), json!([replace_directives(agent)]));
            }
            (None, Some(agent)) => {
                let order: Vec<Value> = items(desired)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("name").cloned())
                    .map(|n| json!({"name": n}))
                    .collect();
                spec.insert(format!("$setElementOrder/{list}"), Value::Array(order));
                spec.insert(list.into(), json!([agent]));
            }
            (Some(_), None) => {
                spec.insert(list.into(), json!([{"name": AGENT_CONTAINER, "$patch": "delete"}]));
            }
            (None, None) => {}
        }
    }
    let template = json!({
        "metadata": {"annotations": {STATUS_ANNOTATION: annotation}},
        "spec": spec
    });
    let mut patch = nest_template(kind, template);
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

/// A patch of the pod template, nested where `kind` keeps it
/// (`spec.template`, a CronJob's `spec.jobTemplate.spec.template`).
fn nest_template(kind: WorkloadKind, template: Value) -> Value {
    kind.template_pointer()
        .rsplit('/')
        .filter(|k| !k.is_empty())
        .fold(template, |inner, key| json!({key: inner}))
}

fn replace_directives(mut container: Value) -> Value {
    if let Some(fields) = container.as_object_mut() {
        for value in fields.values_mut() {
            match value {
                Value::Object(m) => {
                    m.insert("$patch".into(), json!("replace"));
                }
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    items.insert(0, json!({"$patch": "replace"}));
                }
                _ => {}
            }
        }
    }
    container
}

/// The strategic merge patch that removes what `record` lists from a live
/// workload of `kind`: `$patch: delete` on each recorded container in the
/// list of the recorded form, null on each recorded annotation and on
/// verify's.
pub fn detach_patch(kind: WorkloadKind, record: &AttachRecord, resource_version: Option<&str>) -> Value {
    let mut annotations = Map::new();
    for name in record.annotations.iter().map(String::as_str).chain([VERIFY_ANNOTATION]) {
        annotations.insert(name.to_owned(), Value::Null);
    }
    let containers: Vec<Value> =
        record.containers.iter().map(|name| json!({"name": name, "$patch": "delete"})).collect();
    let mut spec = Map::new();
    spec.insert(record.sidecar.list().into(), Value::Array(containers));
    let mut patch = nest_template(
        kind,
        json!({
            "metadata": {"annotations": annotations},
            "spec": spec
        }),
    );
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::fixture::*;
    use crate::sidecar::{Sidecar, inject, record};

    /// The fixture template, and the same with `s` injected.
    fn with_sidecar(s: &Sidecar) -> (Value, Value) {
        let current = template();
        let mut desired = current.clone();
        inject(&mut desired, s).unwrap();
        (current, desired)
    }

    #[test]
    fn attach_patch_orders_a_new_container_last_and_replaces_an_existing_one() {
        let (current, desired) = with_sidecar(&sidecar());
        let p = attach_patch(WorkloadKind::Deployment, &current, &desired, Some("42"));
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["$setElementOrder/containers"], json!([{"name": "app"}, {"name": "bpc-agent"}]));
        assert!(spec["containers"][0].get("$patch").is_none());

        let mut updated = desired.clone();
        let mut s = sidecar();
        s.options.filter = Some("udp".into());
        inject(&mut updated, &s).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &desired, &updated, None);
        let c = &p["spec"]["template"]["spec"]["containers"][0];
        assert!(p.get("metadata").is_none());
        assert_eq!(c["env"][0], json!({"$patch": "replace"}));
        assert_eq!(c["securityContext"]["$patch"], "replace");
        assert_eq!(c["image"], updated["spec"]["containers"][1]["image"]);
    }

    #[test]
    fn detach_patch_deletes_recorded_containers_and_nulls_annotations() {
        let r = record(&sidecar());
        let p = detach_patch(WorkloadKind::Deployment, &r, Some("7"));
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"],
            json!([{"name": "bpc-agent", "$patch": "delete"}])
        );
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][STATUS_ANNOTATION], Value::Null);
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][VERIFY_ANNOTATION], Value::Null);
        assert_eq!(p["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn attach_patch_of_a_native_sidecar_orders_it_first_and_a_form_change_deletes_the_old_one() {
        let (current, desired) = with_sidecar(&native());
        let p = attach_patch(WorkloadKind::Deployment, &current, &desired, None);
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["$setElementOrder/initContainers"], json!([{"name": "bpc-agent"}]));
        assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
        assert!(spec.get("containers").is_none(), "the app's containers are not named");
        let mut moved = desired.clone();
        inject(&mut moved, &sidecar()).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &desired, &moved, None);
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"], json!([{"name": "bpc-agent", "$patch": "delete"}]));
        assert_eq!(spec["$setElementOrder/containers"], json!([{"name": "app"}, {"name": "bpc-agent"}]));
    }

    #[test]
    fn patches_of_a_cronjob_go_into_its_job_template_and_detach_names_the_recorded_list() {
        let (current, desired) = with_sidecar(&native());
        let p = attach_patch(WorkloadKind::CronJob, &current, &desired, Some("9"));
        assert!(p["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"].is_array());
        assert_eq!(p["metadata"]["resourceVersion"], "9");
        let d = detach_patch(WorkloadKind::CronJob, &record(&native()), None);
        assert_eq!(
            d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"],
            json!([{"name": "bpc-agent", "$patch": "delete"}])
        );
        assert!(d["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("containers").is_none());
    }
}
