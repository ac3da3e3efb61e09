//! Putting the sidecar into a pod template and taking it out: the one pair
//! of functions both the live path (attach/detach) and the offline path
//! (inject/uninject) use.

use serde_json::{Map, Value, json};

use super::container::placed_container;
use super::record::{AttachRecord, Injected, Uninjected, attached_record, record, status_annotation};
use super::{AGENT_CONTAINER, STATUS_ANNOTATION, Sidecar, SidecarForm, VERIFY_ANNOTATION};
use crate::Error;
use crate::workload::WorkloadId;

fn not_a_template(workload: &WorkloadId, what: &str) -> Error {
    Error::Usage(format!("{workload} in namespace {}: {what}", workload.namespace))
}

fn has_container(template: &Value, name: &str) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        template
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(name)))
    })
}

/// Puts the sidecar into a pod template (`spec.template` of a workload, or
/// a Pod): as a native sidecar, the first init container; as a container,
/// the last container (a previous attach's agent is replaced in place, or
/// moved when the form changed) and sets the status annotation. Nothing else
/// in the template changes.
///
/// Refuses a template that runs in the host network namespace (unless
/// allowed) and one with a `bpc-agent` container that kubectl-bpc did not add.
pub fn inject(template: &mut Value, sidecar: &Sidecar) -> Result<Injected, Error> {
    let id = &sidecar.workload;
    if !template.is_object() {
        return Err(not_a_template(id, "spec.template is missing or not an object"));
    }
    let previous = attached_record(template)?;
    let ours = previous.as_ref().is_some_and(|r| r.containers.iter().any(|c| c == AGENT_CONTAINER));
    if !ours && has_container(template, AGENT_CONTAINER) {
        return Err(Error::Usage(format!(
            "{id} in namespace {} already has a container named {AGENT_CONTAINER} that kubectl-bpc did not add \
             (no {STATUS_ANNOTATION} annotation); refusing to touch it: rename or remove that container first",
            id.namespace
        )));
    }
    if crate::manifest::yaml11::as_bool(template.pointer("/spec/hostNetwork")) == Some(true)
        && !sidecar.allow_host_network
    {
        return Err(Error::Usage(format!(
            "{id} in namespace {} uses hostNetwork: true, so the sidecar would capture the whole node's traffic; \
             pass --allow-host-network if that is really what you want",
            id.namespace
        )));
    }
    if template.pointer("/spec/containers").and_then(Value::as_array).is_none() {
        return Err(not_a_template(id, "spec.template.spec.containers is missing"));
    }
    let mut record = record(sidecar);
    // A re-attach keeps the list of objects the first attach created.
    record.created = previous.as_ref().map(|r| r.created.clone()).unwrap_or_default();
    // The live agent carries the API server's defaults (fieldRef apiVersion,
    // probe scheme...): the same record means the same sidecar, and an
    // attached template has everything the record could add to it.
    if ours && status_annotation(template) == Some(serde_json::to_string(&record)?.as_str()) {
        return Ok(Injected::Unchanged);
    }

    let root = template.as_object_mut().expect("checked above");
    if !root.contains_key("metadata") {
        record.created.push("/metadata".into());
        root.insert("metadata".into(), Value::Object(Map::new()));
    }
    let metadata = root
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| not_a_template(id, "spec.template.metadata is not an object"))?;
    if !metadata.contains_key("annotations") || metadata["annotations"].is_null() {
        record.created.push("/metadata/annotations".into());
        metadata.insert("annotations".into(), Value::Object(Map::new()));
    }
    if !metadata["annotations"].is_object() {
        return Err(not_a_template(id, "spec.template.metadata.annotations is not a map"));
    }
    place(template, sidecar, &mut record);
    let annotation = serde_json::to_string(&record)?;
    template["metadata"]["annotations"]
        .as_object_mut()
        .expect("checked above")
        .insert(STATUS_ANNOTATION.into(), Value::String(annotation));
    // Past the check above, the record (so the annotation) differs.
    Ok(if ours { Injected::Updated } else { Injected::Added })
}

/// Puts the agent container where its form goes: first of `initContainers`
/// (created if missing, and recorded) for a native sidecar, last of
/// `containers` for a container; one already there is replaced in place, one
/// in the other list (the form changed) is taken out, with the list when a
/// previous attach created it.
fn place(template: &mut Value, sidecar: &Sidecar, record: &mut AttachRecord) {
    let agent = placed_container(sidecar, template);
    let spec = template["spec"].as_object_mut().expect("containers checked by inject");
    let other = match sidecar.form {
        SidecarForm::Native => SidecarForm::Container,
        SidecarForm::Container => SidecarForm::Native,
    };
    let is_agent = |c: &Value| c.get("name").and_then(Value::as_str) == Some(AGENT_CONTAINER);
    if let Some(list) = spec.get_mut(other.list()).and_then(Value::as_array_mut) {
        list.retain(|c| !is_agent(c));
        let pointer = format!("/spec/{}", other.list());
        if list.is_empty() && record.created.contains(&pointer) {
            spec.shift_remove(other.list());
            record.created.retain(|p| *p != pointer);
        }
    }
    let name = sidecar.form.list();
    if !spec.get(name).is_some_and(Value::is_array) {
        record.created.push(format!("/spec/{name}"));
        spec.insert(name.into(), json!([]));
    }
    let list = spec[name].as_array_mut().expect("made an array above");
    match (list.iter_mut().find(|c| is_agent(c)), sidecar.form) {
        (Some(existing), _) => *existing = agent,
        (None, SidecarForm::Native) => list.insert(0, agent),
        (None, SidecarForm::Container) => list.push(agent),
    }
}

/// Takes the sidecar out of a pod template: removes exactly the containers
/// and annotations its status annotation lists (plus `verify`'s temporary
/// annotation), and the empty objects attach created. A template without
/// the annotation but with a `bpc-agent` container is refused: kubectl-bpc
/// did not add that container.
pub fn uninject(template: &mut Value, workload: &WorkloadId) -> Result<Uninjected, Error> {
    let Some(record) = attached_record(template)? else {
        if has_container(template, AGENT_CONTAINER) {
            return Err(Error::Usage(format!(
                "{workload} in namespace {} has a {AGENT_CONTAINER} container without the {STATUS_ANNOTATION} \
                 annotation: kubectl-bpc did not add it, so it is left alone",
                workload.namespace
            )));
        }
        return Ok(Uninjected::NotAttached);
    };
    for list in ["containers", "initContainers"] {
        if let Some(cs) = template.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) {
            cs.retain(|c| {
                !c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| record.containers.iter().any(|r| r == n))
            });
        }
    }
    if let Some(a) = template.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        for name in record.annotations.iter().map(String::as_str).chain([VERIFY_ANNOTATION]) {
            a.shift_remove(name);
        }
    }
    // Deepest first, so "/metadata" goes after "/metadata/annotations".
    let mut created = record.created.clone();
    created.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for pointer in created {
        remove_if_empty(template, &pointer);
    }
    Ok(Uninjected::Removed)
}

fn remove_if_empty(root: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let parent = if parent.is_empty() { Some(&mut *root) } else { root.pointer_mut(parent) };
    if let Some(Value::Object(map)) = parent
        && map.get(key).is_some_and(|v| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        })
    {
        map.shift_remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::CapabilityMode;
    use crate::sidecar::fixture::*;

    #[test]
    fn inject_appends_the_container_and_records_it() {
        let mut t = template();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Added);
        let names: Vec<_> = t["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
        assert_eq!(names, ["app", "bpc-agent"]);
        let r = attached_record(&t).unwrap().unwrap();
        assert_eq!(r.key, sidecar().workload.key().to_string());
        assert_eq!(r.containers, ["bpc-agent"]);
        assert_eq!(r.created, ["/metadata/annotations"]);
        assert_eq!(r.capabilities, CapabilityMode::Default);
    }

    #[test]
    fn reinject_with_same_options_is_unchanged_and_with_new_options_updates_in_place() {
        let mut t = template();
        inject(&mut t, &sidecar()).unwrap();
        let once = t.clone();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Unchanged);
        assert_eq!(t, once);
        let mut s = sidecar();
        s.options.filter = Some("tcp".into());
        assert_eq!(inject(&mut t, &s).unwrap(), Injected::Updated);
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(env(&t["spec"]["containers"][1], "BPC_FILTER").unwrap()["value"], "tcp");
        assert_eq!(attached_record(&t).unwrap().unwrap().created, ["/metadata/annotations"]);
    }

    #[test]
    fn foreign_agent_container_is_refused_and_left_alone() {
        let mut t = template();
        t["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "bpc-agent", "image": "theirs"}));
        let before = t.clone();
        let e = inject(&mut t, &sidecar()).unwrap_err().to_string();
        assert!(e.contains("did not add"), "{e}");
        assert_eq!(t, before);
        assert!(uninject(&mut t, &sidecar().workload).is_err());
        assert_eq!(t, before);
    }

    #[test]
    fn host_network_is_refused_unless_allowed() {
        let mut t = template();
        t["spec"]["hostNetwork"] = json!(true);
        let e = inject(&mut t.clone(), &sidecar()).unwrap_err().to_string();
        assert!(e.contains("--allow-host-network"), "{e}");
        let mut s = sidecar();
        s.allow_host_network = true;
        assert_eq!(inject(&mut t, &s).unwrap(), Injected::Added);
    }

    #[test]
    fn uninject_restores_the_template_exactly() {
        for original in [
            template(),
            json!({"spec": {"containers": [{"name": "app"}]}}),
            json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"containers": [{"name": "app"}]}}),
        ] {
            let mut t = original.clone();
            inject(&mut t, &sidecar()).unwrap();
            assert_ne!(t, original);
            assert_eq!(uninject(&mut t, &sidecar().workload).unwrap(), Uninjected::Removed);
            assert_eq!(t, original);
            assert_eq!(uninject(&mut t, &sidecar().workload).unwrap(), Uninjected::NotAttached);
        }
    }

    #[test]
    fn native_inject_puts_the_agent_first_of_init_containers_with_restart_always_and_a_startup_probe() {
        let mut t = template();
        t["spec"]["initContainers"] = json!([{"name": "migrate", "image": "tool"}]);
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Added);
        let init: Vec<_> =
            t["spec"]["initContainers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
        assert_eq!(init, ["bpc-agent", "migrate"], "first, so it captures the other init containers too");
        let agent = &t["spec"]["initContainers"][0];
        assert_eq!(agent["restartPolicy"], "Always");
        assert_eq!(agent["startupProbe"]["httpGet"]["path"], "/startupz");
        assert_eq!(agent["startupProbe"]["periodSeconds"], 1);
        assert_eq!(env(agent, "BPC_ON_ERROR").unwrap()["value"], "serve");
        assert!(env(agent, "BPC_LINGER").is_none(), "the kubelet stops a native sidecar after the app");
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1, "the app's containers untouched");
        let r = attached_record(&t).unwrap().unwrap();
        assert_eq!(r.sidecar, SidecarForm::Native);
        assert!(serde_json::to_string(&r).unwrap().contains("\"sidecar\":\"native\""));
    }

    #[test]
    fn native_with_metrics_private_probes_startup_by_exec() {
        let mut s = native();
        s.options.metrics_private = true;
        let mut t = template();
        inject(&mut t, &s).unwrap();
        assert_eq!(
            t["spec"]["initContainers"][0]["startupProbe"]["exec"]["command"],
            json!(["/usr/local/bin/bpc-agent", "--check-startup"])
        );
    }

    #[test]
    fn the_container_form_lingers_within_the_grace_period() {
        let mut t = template();
        inject(&mut t, &sidecar()).unwrap();
        assert_eq!(env(&t["spec"]["containers"][1], "BPC_LINGER").unwrap()["value"], "5s");
        assert!(t["spec"]["containers"][1].get("startupProbe").is_none());
        let mut short = template();
        short["spec"]["terminationGracePeriodSeconds"] = json!(3);
        inject(&mut short, &sidecar()).unwrap();
        assert_eq!(env(&short["spec"]["containers"][1], "BPC_LINGER").unwrap()["value"], "2s");
        let mut none = template();
        none["spec"]["terminationGracePeriodSeconds"] = json!(1);
        inject(&mut none, &sidecar()).unwrap();
        assert!(env(&none["spec"]["containers"][1], "BPC_LINGER").is_none());
    }

    #[test]
    fn uninject_restores_a_native_injection_exactly_with_or_without_init_containers() {
        let mut with_init = template();
        with_init["spec"]["initContainers"] = json!([{"name": "migrate"}]);
        for original in [template(), with_init] {
            let mut t = original.clone();
            inject(&mut t, &native()).unwrap();
            assert_eq!(uninject(&mut t, &native().workload).unwrap(), Uninjected::Removed);
            assert_eq!(t, original);
        }
    }

    #[test]
    fn changing_the_form_moves_the_agent_and_removes_a_list_attach_created() {
        let original = template();
        let mut t = original.clone();
        inject(&mut t, &native()).unwrap();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Updated);
        assert!(t["spec"].get("initContainers").is_none(), "the list attach created goes with the agent");
        assert_eq!(t["spec"]["containers"][1]["name"], AGENT_CONTAINER);
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Updated);
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(t["spec"]["initContainers"][0]["name"], AGENT_CONTAINER);
        uninject(&mut t, &native().workload).unwrap();
        assert_eq!(t, original);
    }

    #[test]
    fn reattach_of_a_server_defaulted_agent_with_the_same_record_is_unchanged() {
        let mut t = template();
        inject(&mut t, &native()).unwrap();
        // What the API server adds on its way back: defaults in the agent.
        t["spec"]["initContainers"][0]["startupProbe"]["httpGet"]["scheme"] = json!("HTTP");
        t["spec"]["initContainers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        let live = t.clone();
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Unchanged);
        assert_eq!(t, live, "nothing rewritten");
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Updated, "another form is a change");
    }
}
