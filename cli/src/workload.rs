//! Workloads the sidecar can be attached to: Deployments, StatefulSets,
//! DaemonSets and CronJobs, named on the command line as `NAME`,
//! `deploy/NAME`, `sts/NAME`, `ds/NAME`, `cronjob/NAME` (kubectl's resource
//! names and short names); Jobs and Pods are named too, to be refused with
//! the reason (their pod templates are immutable) or captured.
//!
//! The live path handles every kind through one `DynamicObject` API so
//! that read, plan and patch are the same code for every kind; the pod
//! template is reached at [`WorkloadKind::template_pointer`].

use std::fmt;

use bpc_wire::WorkloadKey;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;

use crate::Error;

pub use bpc_wire::WorkloadKind;

/// The kube-rs side of a [`WorkloadKind`] (the kind itself, its names and
/// aliases are `bpc-wire`'s, which derives the key from them).
pub trait KindApi {
    /// The API resource for the dynamic client.
    fn api_resource(self) -> ApiResource;
    /// A namespaced dynamic API of this kind.
    fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject>;
    /// A cluster-wide dynamic API of this kind (for `-A`).
    fn api_all(self, client: &kube::Client) -> Api<DynamicObject>;
}

impl KindApi for WorkloadKind {
    fn api_resource(self) -> ApiResource {
        match self {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
            WorkloadKind::Job => ApiResource::erase::<Job>(&()),
            WorkloadKind::Pod => ApiResource::erase::<Pod>(&()),
        }
    }

    fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.api_resource())
    }

    fn api_all(self, client: &kube::Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &self.api_resource())
    }
}

/// Serde for a [`WorkloadKind`] as the API spells it (`"Deployment"`), for
/// reports that carry a kind.
pub mod kind_serde {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::WorkloadKind;

    /// Writes the kind as `"Deployment"`.
    pub fn serialize<S: Serializer>(kind: &WorkloadKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    /// Reads a kind as the API spells it (`"Deployment"`, `"CronJob"`...).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WorkloadKind, D::Error> {
        let text = String::deserialize(d)?;
        WorkloadKind::from_kind(&text)
            .ok_or_else(|| de::Error::custom(format!("unknown workload kind {text:?}")))
    }
}

/// A workload named on the command line: `NAME`, or `KIND/NAME` with KIND
/// any of kubectl's names for a [`WorkloadKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// The kind given, None for a bare `NAME`.
    pub kind: Option<WorkloadKind>,
    /// Name of the workload.
    pub name: String,
}

impl WorkloadRef {
    /// Parses `NAME` or `KIND/NAME`; the one parser of workload arguments.
    pub fn parse(arg: &str) -> Result<WorkloadRef, Error> {
        let (kind, name) = match arg.split_once('/') {
            None => (None, arg),
            Some((kind, name)) => {
                let kind = WorkloadKind::from_name(kind).ok_or_else(|| {
                    Error::Usage(format!(
                        "unsupported workload kind '{kind}' in '{arg}': use NAME, deploy/NAME, sts/NAME, ds/NAME \
                         or cronjob/NAME"
                    ))
                })?;
                (Some(kind), name)
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::Usage(format!("'{arg}' is not a workload name: use NAME or KIND/NAME")));
        }
        Ok(WorkloadRef { kind, name: name.to_owned() })
    }

    /// The kind, where a bare name means a Deployment (as for kubectl's
    /// commands that need one kind: attach, detach, verify, capture).
    pub fn kind_or_deployment(&self) -> WorkloadKind {
        self.kind.unwrap_or(WorkloadKind::Deployment)
    }

    /// Whether it names this workload (a bare name: of any kind).
    pub fn matches(&self, kind: WorkloadKind, name: &str) -> bool {
        self.name == name && self.kind.is_none_or(|k| k == kind)
    }
}

/// A workload fully identified: namespace, kind and name. Its workload key
/// is the GRE key every pod of it sends with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    /// Namespace.
    pub namespace: String,
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
}

impl WorkloadId {
    /// `namespace/kind/name` with the kind lower-cased: the agent's
    /// `BPC_WORKLOAD` and the input of the workload key.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind.lower(), self.name)
    }

    /// The GRE key of this workload.
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey::from_workload(&self.namespace, self.kind.as_str(), &self.name)
    }
}

impl fmt::Display for WorkloadId {
    /// kubectl's way of naming an object: `deployment.apps/web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.resource(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_has_no_kind_and_means_a_deployment_where_one_kind_is_needed() {
        let r = WorkloadRef::parse("web").unwrap();
        assert_eq!(r, WorkloadRef { kind: None, name: "web".into() });
        assert_eq!(r.kind_or_deployment(), WorkloadKind::Deployment);
        assert!(r.matches(WorkloadKind::StatefulSet, "web") && !r.matches(WorkloadKind::StatefulSet, "db"));
        let sts = WorkloadRef::parse("sts/web").unwrap();
        assert!(
            sts.matches(WorkloadKind::StatefulSet, "web") && !sts.matches(WorkloadKind::Deployment, "web")
        );
    }

    #[test]
    fn kubectl_resource_and_short_names_parse() {
        for (arg, kind) in [
            ("deploy/web", WorkloadKind::Deployment),
            ("deployment/web", WorkloadKind::Deployment),
            ("deployments.apps/web", WorkloadKind::Deployment),
            ("sts/web", WorkloadKind::StatefulSet),
            ("StatefulSet/web", WorkloadKind::StatefulSet),
            ("ds/web", WorkloadKind::DaemonSet),
            ("daemonset/web", WorkloadKind::DaemonSet),
            ("cronjob/web", WorkloadKind::CronJob),
            ("cj/web", WorkloadKind::CronJob),
            ("job/web", WorkloadKind::Job),
            ("pod/web", WorkloadKind::Pod),
        ] {
            assert_eq!(WorkloadRef::parse(arg).unwrap().kind, Some(kind), "{arg}");
        }
    }

    #[test]
    fn unsupported_kind_and_empty_name_are_usage_errors() {
        for arg in ["rs/x", "svc/x", "deploy/", "", "deploy/a/b"] {
            let e = WorkloadRef::parse(arg).unwrap_err().to_string();
            assert!(e.contains(arg) || arg.is_empty(), "{arg}: {e}");
        }
        assert!(WorkloadRef::parse("rs/x").unwrap_err().to_string().contains("cronjob/NAME"));
    }

    #[test]
    fn workload_path_and_key_match_the_wire_definition() {
        let id =
            WorkloadId { namespace: "shop".into(), kind: WorkloadKind::Deployment, name: "checkout".into() };
        assert_eq!(id.path(), "shop/deployment/checkout");
        assert_eq!(id.key(), WorkloadKey(0x773f9626));
        assert_eq!(id.to_string(), "deployment.apps/checkout");
    }
}
