//! Workloads the sidecar can be attached to: Deployments, StatefulSets and
//! DaemonSets, named on the command line as `NAME`, `deploy/NAME`,
//! `sts/NAME`, `ds/NAME` (kubectl's resource names and short names).
//!
//! The live path handles all three kinds through one `DynamicObject` API so
//! that read, plan and patch are the same code for every kind; the pod
//! template is reached at `/spec/template` in each of them.

use std::fmt;

use bpc_wire::WorkloadKey;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;

use crate::Error;

/// A kind of workload with a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// Every kind, in the order `-l`/`--all` lists them.
    pub const ALL: [WorkloadKind; 3] =
        [WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet];

    /// The Kubernetes `kind` ("Deployment").
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    /// The kind from a manifest's `kind` field (exact, as the API spells it).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind from a command-line resource name: `deploy`, `deployment`,
    /// `deployments`, `deployment.apps`, and likewise `sts`, `ds`.
    pub fn from_resource(name: &str) -> Option<WorkloadKind> {
        match name.to_ascii_lowercase().as_str() {
            "deploy" | "deployment" | "deployments" | "deployment.apps" | "deployments.apps" => {
                Some(WorkloadKind::Deployment)
            }
            "sts" | "statefulset" | "statefulsets" | "statefulset.apps" | "statefulsets.apps" => {
                Some(WorkloadKind::StatefulSet)
            }
            "ds" | "daemonset" | "daemonsets" | "daemonset.apps" | "daemonsets.apps" => {
                Some(WorkloadKind::DaemonSet)
            }
            _ => None,
        }
    }

    /// kubectl's qualified resource name, used in messages
    /// ("deployment.apps/web attached").
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment.apps",
            WorkloadKind::StatefulSet => "statefulset.apps",
            WorkloadKind::DaemonSet => "daemonset.apps",
        }
    }

    /// The API resource for the dynamic client.
    pub fn api_resource(self) -> ApiResource {
        match self {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }

    /// A namespaced dynamic API of this kind.
    pub fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.api_resource())
    }

    /// A cluster-wide dynamic API of this kind (for `-A`).
    pub fn api_all(self, client: &kube::Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &self.api_resource())
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload named on the command line: kind (Deployment when not given) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// Kind of the workload.
    pub kind: WorkloadKind,
    /// Name of the workload.
    pub name: String,
}

impl WorkloadRef {
    /// Parses `NAME`, `KIND/NAME` with KIND one of kubectl's names for
    /// Deployments, StatefulSets and DaemonSets.
    pub fn parse(arg: &str) -> Result<WorkloadRef, Error> {
        let (kind, name) = match arg.split_once('/') {
            None => (WorkloadKind::Deployment, arg),
            Some((kind, name)) => {
                let kind = WorkloadKind::from_resource(kind).ok_or_else(|| {
                    Error::Usage(format!(
                        "unsupported workload kind '{kind}' in '{arg}': use NAME, deploy/NAME, sts/NAME or ds/NAME"
                    ))
                })?;
                (kind, name)
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::Usage(format!("'{arg}' is not a workload name: use NAME or KIND/NAME")));
        }
        Ok(WorkloadRef { kind, name: name.to_owned() })
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
        format!("{}/{}/{}", self.namespace, self.kind.as_str().to_ascii_lowercase(), self.name)
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
    fn bare_name_is_a_deployment() {
        let r = WorkloadRef::parse("web").unwrap();
        assert_eq!(r, WorkloadRef { kind: WorkloadKind::Deployment, name: "web".into() });
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
        ] {
            assert_eq!(WorkloadRef::parse(arg).unwrap().kind, kind, "{arg}");
        }
    }

    #[test]
    fn unsupported_kind_and_empty_name_are_usage_errors() {
        for arg in ["job/x", "pod/x", "deploy/", "", "deploy/a/b"] {
            let e = WorkloadRef::parse(arg).unwrap_err().to_string();
            assert!(e.contains(arg) || arg.is_empty(), "{arg}: {e}");
        }
        assert!(WorkloadRef::parse("job/x").unwrap_err().to_string().contains("deploy/NAME"));
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
