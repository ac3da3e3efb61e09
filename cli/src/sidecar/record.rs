//! What attach added to a pod template: the status annotation's record, and
//! what a change did.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AGENT_CONTAINER, CapabilityMode, STATUS_ANNOTATION, Sidecar, SidecarForm, SidecarOptions, VERSION,
};
use crate::Error;

/// What attach added to a pod template: the JSON of the status annotation.
/// Detach and uninject remove exactly what it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachRecord {
    /// Plugin version that attached.
    pub version: String,
    /// `namespace/kind/name`.
    pub workload: String,
    /// The workload key, `0x%08x`.
    pub key: String,
    /// Containers added (by name).
    pub containers: Vec<String>,
    /// Annotations added on the pod template (including this one).
    pub annotations: Vec<String>,
    /// Objects that did not exist and were created to hold the annotation, as
    /// JSON pointers relative to the template (removed again when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Capability mode used.
    pub capabilities: CapabilityMode,
    /// The form the agent was added in (records without it had a container).
    #[serde(default = "SidecarForm::before_recorded")]
    pub sidecar: SidecarForm,
    /// The options attach was given.
    pub options: SidecarOptions,
}

impl AttachRecord {
    /// Parses a status annotation's value.
    pub fn parse(text: &str) -> Result<AttachRecord, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "the {STATUS_ANNOTATION} annotation is not one kubectl-bpc wrote ({e}); \
                 remove the sidecar by hand or restore the annotation"
            ))
        })
    }
}

/// What [`inject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Injected {
    /// The sidecar was not there and was added.
    Added,
    /// The sidecar was there with other options and was replaced in place.
    Updated,
    /// The sidecar was there with the same options: nothing changed.
    Unchanged,
}

/// What [`uninject`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Uninjected {
    /// The sidecar and everything recorded with it were removed.
    Removed,
    /// There was no sidecar: nothing changed.
    NotAttached,
}

/// What attach, detach, inject or uninject did to one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The sidecar was added.
    Added,
    /// The sidecar was replaced in place with other options.
    Updated,
    /// The sidecar was there with the same options.
    Unchanged,
    /// The sidecar and what was recorded with it were removed.
    Removed,
    /// There was no sidecar to remove.
    NotAttached,
}

impl Change {
    /// In kubectl's words, for a live workload: "attached", "detached"...
    pub fn in_cluster(self) -> &'static str {
        match self {
            Change::Added => "attached",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "detached",
            Change::NotAttached => "not attached",
        }
    }

    /// Whether the pod template changed, so that the workload rolls out.
    pub fn rolls(self) -> bool {
        matches!(self, Change::Added | Change::Updated | Change::Removed)
    }

    /// For a manifest: "sidecar added", "sidecar removed"...
    pub fn in_manifest(self) -> &'static str {
        match self {
            Change::Added => "sidecar added",
            Change::Updated => "sidecar updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "sidecar removed",
            Change::NotAttached => "not attached",
        }
    }
}

impl From<Injected> for Change {
    fn from(i: Injected) -> Change {
        match i {
            Injected::Added => Change::Added,
            Injected::Updated => Change::Updated,
            Injected::Unchanged => Change::Unchanged,
        }
    }
}

impl From<Uninjected> for Change {
    fn from(u: Uninjected) -> Change {
        match u {
            Uninjected::Removed => Change::Removed,
            Uninjected::NotAttached => Change::NotAttached,
        }
    }
}

/// The status annotation's record for a sidecar (`created` filled by [`inject`]).
pub fn record(sidecar: &Sidecar) -> AttachRecord {
    AttachRecord {
        version: VERSION.to_owned(),
        workload: sidecar.workload.path(),
        key: sidecar.workload.key().to_string(),
        containers: vec![AGENT_CONTAINER.to_owned()],
        annotations: vec![STATUS_ANNOTATION.to_owned()],
        created: Vec::new(),
        capabilities: sidecar.capabilities,
        sidecar: sidecar.form,
        options: sidecar.options.clone(),
    }
}

/// The status annotation of a template, if any.
pub fn status_annotation(template: &Value) -> Option<&str> {
    template.pointer("/metadata/annotations")?.get(STATUS_ANNOTATION)?.as_str()
}

/// The record of a template's sidecar, if kubectl-bpc attached one.
pub fn attached_record(template: &Value) -> Result<Option<AttachRecord>, Error> {
    status_annotation(template).map(AttachRecord::parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::fixture::*;

    #[test]
    fn a_record_written_before_the_form_was_recorded_means_a_container() {
        let mut old = serde_json::to_value(record(&sidecar())).unwrap();
        old.as_object_mut().unwrap().remove("sidecar");
        let r = AttachRecord::parse(&old.to_string()).unwrap();
        assert_eq!(r.sidecar, SidecarForm::Container);
    }

    #[test]
    fn a_change_reads_as_kubectl_says_it_live_and_names_the_sidecar_in_a_manifest() {
        assert_eq!(
            (Change::from(Injected::Added).in_cluster(), Change::Added.in_manifest()),
            ("attached", "sidecar added")
        );
        assert_eq!(
            (Change::from(Uninjected::Removed).in_cluster(), Change::Removed.in_manifest()),
            ("detached", "sidecar removed")
        );
        assert_eq!(Change::from(Uninjected::NotAttached).in_cluster(), "not attached");
    }

    #[test]
    fn the_annotations_options_keep_their_names_order_and_omitted_defaults() {
        let mut s = sidecar();
        assert_eq!(
            serde_json::to_string(&record(&s).options).unwrap(),
            r#"{"collectors":["198.18.0.2"],"cpu":"50m","cpuLimit":"500m","memory":"32Mi","memoryLimit":"64Mi","metricsPort":9469}"#
        );
        s.options = every_option();
        let json = serde_json::to_string(&record(&s).options).unwrap();
        assert_eq!(
            json,
            r#"{"collectors":["198.18.0.2","probe.obs.svc"],"filter":"udp","interface":"eth0","snaplen":256,"maxPps":5000,"maxMbps":100,"oversize":"truncate","greProfile":"standard","sendPath":"raw","encap":"erspan-iii","vni":7,"session":9,"key":16,"image":"bpc-agent:test","cpu":"100m","cpuLimit":"1","memory":"64Mi","memoryLimit":"128Mi","metricsPort":9470,"metricsPrivate":true,"buffer":48,"batch":"250ms"}"#
        );
        assert_eq!(serde_json::from_str::<SidecarOptions>(&json).unwrap(), s.options, "read back the same");
    }
}
