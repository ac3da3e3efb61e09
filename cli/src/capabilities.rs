//! Choosing how the sidecar gets CAP_NET_RAW (`--capabilities auto|default|add`).
//!
//! The facts the choice rests on: containerd and Docker grant NET_RAW to
//! every container by default, CRI-O (since 1.18) does not; Pod Security
//! `baseline` forbids *adding* NET_RAW but not keeping a granted one;
//! `restricted` drops everything, so capture is impossible there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::Error;
use crate::sidecar::CapabilityMode;

/// `--capabilities` as given on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CapabilitiesArg {
    /// Pick from the nodes' container runtime and the namespace's Pod Security labels.
    #[default]
    Auto,
    /// Keep the runtime's NET_RAW, drop every other default capability, add nothing.
    Default,
    /// Drop ALL, add NET_RAW.
    Add,
}

/// A namespace's `pod-security.kubernetes.io/*` levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodSecurity {
    /// `enforce` level (privileged, baseline, restricted), if labelled.
    pub enforce: Option<String>,
    /// `warn` level, if labelled.
    pub warn: Option<String>,
    /// `audit` level, if labelled.
    pub audit: Option<String>,
}

impl PodSecurity {
    /// Reads the levels from a namespace's labels.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> PodSecurity {
        let level = |mode: &str| labels.get(&format!("pod-security.kubernetes.io/{mode}")).cloned();
        PodSecurity { enforce: level("enforce"), warn: level("warn"), audit: level("audit") }
    }

    fn enforces(&self, level: &str) -> bool {
        self.enforce.as_deref() == Some(level)
    }
}

/// The container runtime of a node, from `status.nodeInfo.containerRuntimeVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// containerd or Docker: grants NET_RAW by default.
    GrantsNetRaw,
    /// CRI-O: does not grant NET_RAW by default.
    CriO,
    /// Something else: assumed to grant it (the common case), said so.
    Unknown,
}

impl Runtime {
    /// Classifies `containerd://1.7.2`, `cri-o://1.29.1`, `docker://24.0.7`.
    pub fn of_version(version: &str) -> Runtime {
        let name = version.split("://").next().unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "containerd" | "docker" => Runtime::GrantsNetRaw,
            "cri-o" | "crio" => Runtime::CriO,
            _ => Runtime::Unknown,
        }
    }
}

/// The mode picked and why, shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The mode.
    pub mode: CapabilityMode,
    /// Why, in one sentence.
    pub reason: String,
}

fn restricted_error(namespace: &str) -> Error {
    Error::Usage(format!(
        "namespace {namespace} enforces Pod Security 'restricted', which drops every capability: the agent \
         cannot capture there. Ask for the namespace to be labelled \
         pod-security.kubernetes.io/enforce=baseline (the agent then keeps only NET_RAW), or capture a \
         workload in another namespace"
    ))
}

/// Picks the capability mode. `runtimes` is `None` when the nodes could not
/// be read (no permission, or offline `inject`).
pub fn choose(
    requested: CapabilitiesArg,
    namespace: &str,
    pss: &PodSecurity,
    runtimes: Option<&[Runtime]>,
) -> Result<Choice, Error> {
    if pss.enforces("restricted") {
        return Err(restricted_error(namespace));
    }
    let baseline = pss.enforces("baseline");
    let crio = runtimes.map_or(0, |r| r.iter().filter(|r| **r == Runtime::CriO).count());
    let total = runtimes.map_or(0, <[Runtime]>::len);
    match requested {
        CapabilitiesArg::Add if baseline => Err(Error::Usage(format!(
            "namespace {namespace} enforces Pod Security 'baseline', which forbids adding NET_RAW: \
             use --capabilities default (containerd and Docker grant NET_RAW already)"
        ))),
        CapabilitiesArg::Add => {
            Ok(Choice { mode: CapabilityMode::Add, reason: "requested with --capabilities add".into() })
        }
        CapabilitiesArg::Default => {
            let mut reason = String::from("requested with --capabilities default");
            if crio > 0 {
                reason.push_str(&format!(
                    "; note: {crio} of {total} nodes run CRI-O, which does not grant NET_RAW: agents there exit \
                     with MISSING-NET-RAW"
                ));
            }
            Ok(Choice { mode: CapabilityMode::Default, reason })
        }
        CapabilitiesArg::Auto => match runtimes {
            None => Ok(Choice {
                mode: CapabilityMode::Default,
                reason:
                    "nodes not readable: assuming containerd or Docker, which grant NET_RAW (on CRI-O use \
                         --capabilities add)"
                        .into(),
            }),
            Some(_) if crio == 0 => Ok(Choice {
                mode: CapabilityMode::Default,
                reason: format!(
                    "{total} node(s) run a runtime that grants NET_RAW (containerd/Docker): keeping it and \
                     dropping the rest passes Pod Security baseline"
                ),
            }),
            Some(_) if !baseline => Ok(Choice {
                mode: CapabilityMode::Add,
                reason: format!(
                    "{crio} of {total} node(s) run CRI-O, which does not grant NET_RAW, and namespace {namespace} \
                     does not enforce baseline: adding NET_RAW"
                ),
            }),
            Some(_) if crio == total => Err(Error::Usage(format!(
                "every node runs CRI-O, which does not grant NET_RAW, and namespace {namespace} enforces Pod \
                 Security 'baseline', which forbids adding it: capture is impossible as things stand. Either \
                 add NET_RAW to CRI-O's default_capabilities and attach with --capabilities default, or label \
                 the namespace pod-security.kubernetes.io/enforce=privileged and use --capabilities add"
            ))),
            Some(_) => Ok(Choice {
                mode: CapabilityMode::Default,
                reason: format!(
                    "namespace {namespace} enforces baseline, so NET_RAW cannot be added; {crio} of {total} \
                     node(s) run CRI-O and pods scheduled there will lack NET_RAW"
                ),
            }),
        },
    }
}

/// The namespace's Pod Security levels. A namespace that cannot be read
/// (403) counts as unlabelled; the server-side dry run still catches a
/// rejection.
pub async fn pod_security(client: &kube::Client, namespace: &str) -> Result<PodSecurity, Error> {
    match Api::<Namespace>::all(client.clone()).get(namespace).await {
        Ok(ns) => Ok(PodSecurity::from_labels(&ns.metadata.labels.unwrap_or_default())),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(PodSecurity::default()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Err(Error::Usage(format!("namespace {namespace} not found: check -n/--namespace and --context")))
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The container runtimes of all nodes, or `None` when nodes cannot be
/// listed (namespace-scoped users usually cannot).
pub async fn node_runtimes(client: &kube::Client) -> Result<Option<Vec<Runtime>>, Error> {
    match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => Ok(Some(
            list.items
                .iter()
                .map(|n| {
                    let v = n
                        .status
                        .as_ref()
                        .and_then(|s| s.node_info.as_ref())
                        .map(|i| i.container_runtime_version.as_str());
                    Runtime::of_version(v.unwrap_or_default())
                })
                .collect(),
        )),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Per-namespace capability choices, and the nodes' runtimes read once.
pub struct CapabilityPlanner {
    requested: CapabilitiesArg,
    runtimes: Option<Option<Vec<Runtime>>>,
    chosen: BTreeMap<String, Result<Choice, String>>,
    /// The reason is not printed (the extcap: Wireshark shows any stderr as an error).
    quiet: bool,
}

impl CapabilityPlanner {
    /// A planner for the mode given on the command line.
    pub fn new(requested: CapabilitiesArg) -> CapabilityPlanner {
        CapabilityPlanner { requested, runtimes: None, chosen: BTreeMap::new(), quiet: false }
    }

    /// The same planner, printing nothing.
    pub fn quiet(mut self, quiet: bool) -> CapabilityPlanner {
        self.quiet = quiet;
        self
    }

    /// The choice for a namespace; prints the reason the first time.
    pub async fn choose(&mut self, client: &kube::Client, namespace: &str) -> Result<Choice, Error> {
        if !self.chosen.contains_key(namespace) {
            let pss = pod_security(client, namespace).await?;
            if self.requested == CapabilitiesArg::Auto && self.runtimes.is_none() {
                self.runtimes = Some(node_runtimes(client).await?);
            }
            let runtimes = self.runtimes.as_ref().and_then(Option::as_deref);
            let choice = choose(self.requested, namespace, &pss, runtimes).map_err(|e| e.to_string());
            if let Ok(c) = &choice
                && !self.quiet
            {
                eprintln!("capabilities for namespace {namespace}: {} ({})", c.mode.as_str(), c.reason);
            }
            self.chosen.insert(namespace.to_owned(), choice);
        }
        self.chosen[namespace].clone().map_err(Error::Workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pss(enforce: Option<&str>) -> PodSecurity {
        PodSecurity { enforce: enforce.map(str::to_owned), ..Default::default() }
    }

    const CONTAINERD: Runtime = Runtime::GrantsNetRaw;

    #[test]
    fn runtime_versions_classify() {
        assert_eq!(Runtime::of_version("containerd://1.7.2"), Runtime::GrantsNetRaw);
        assert_eq!(Runtime::of_version("docker://24.0.7"), Runtime::GrantsNetRaw);
        assert_eq!(Runtime::of_version("cri-o://1.29.1"), Runtime::CriO);
        assert_eq!(Runtime::of_version("frakti://1"), Runtime::Unknown);
        assert_eq!(Runtime::of_version(""), Runtime::Unknown);
    }

    #[test]
    fn auto_on_containerd_keeps_the_granted_net_raw() {
        let c =
            choose(CapabilitiesArg::Auto, "shop", &pss(Some("baseline")), Some(&[CONTAINERD, CONTAINERD]))
                .unwrap();
        assert_eq!(c.mode, CapabilityMode::Default);
        assert!(c.reason.contains("2 node(s)"), "{}", c.reason);
    }

    #[test]
    fn auto_on_crio_adds_net_raw_where_allowed() {
        let c = choose(CapabilitiesArg::Auto, "shop", &pss(None), Some(&[Runtime::CriO])).unwrap();
        assert_eq!(c.mode, CapabilityMode::Add);
        assert!(c.reason.contains("CRI-O"));
        let c =
            choose(CapabilitiesArg::Auto, "shop", &pss(Some("privileged")), Some(&[Runtime::CriO])).unwrap();
        assert_eq!(c.mode, CapabilityMode::Add);
    }

    #[test]
    fn auto_on_crio_under_baseline_explains_why_capture_is_impossible() {
        let e = choose(CapabilitiesArg::Auto, "shop", &pss(Some("baseline")), Some(&[Runtime::CriO]))
            .unwrap_err();
        assert!(e.to_string().contains("default_capabilities"), "{e}");
    }

    #[test]
    fn auto_on_mixed_runtimes_under_baseline_keeps_default_and_warns() {
        let c =
            choose(CapabilitiesArg::Auto, "shop", &pss(Some("baseline")), Some(&[CONTAINERD, Runtime::CriO]))
                .unwrap();
        assert_eq!(c.mode, CapabilityMode::Default);
        assert!(c.reason.contains("1 of 2"), "{}", c.reason);
    }

    #[test]
    fn auto_without_node_access_assumes_containerd_and_says_so() {
        let c = choose(CapabilitiesArg::Auto, "shop", &pss(None), None).unwrap();
        assert_eq!(c.mode, CapabilityMode::Default);
        assert!(c.reason.contains("--capabilities add"));
    }

    #[test]
    fn restricted_refuses_every_mode() {
        for mode in [CapabilitiesArg::Auto, CapabilitiesArg::Default, CapabilitiesArg::Add] {
            let e =
                choose(mode, "vault", &pss(Some("restricted")), Some(&[CONTAINERD])).unwrap_err().to_string();
            assert!(e.contains("restricted") && e.contains("vault") && e.contains("enforce=baseline"), "{e}");
        }
    }

    #[test]
    fn explicit_add_under_baseline_is_refused_and_default_on_crio_warns() {
        assert!(choose(CapabilitiesArg::Add, "shop", &pss(Some("baseline")), None).is_err());
        let c = choose(CapabilitiesArg::Default, "shop", &pss(None), Some(&[Runtime::CriO])).unwrap();
        assert_eq!(c.mode, CapabilityMode::Default);
        assert!(c.reason.contains("MISSING-NET-RAW"));
    }

    #[test]
    fn pss_levels_come_from_namespace_labels() {
        let labels = BTreeMap::from([
            ("pod-security.kubernetes.io/enforce".to_owned(), "baseline".to_owned()),
            ("pod-security.kubernetes.io/warn".to_owned(), "restricted".to_owned()),
        ]);
        let p = PodSecurity::from_labels(&labels);
        assert_eq!(p.enforce.as_deref(), Some("baseline"));
        assert_eq!(p.warn.as_deref(), Some("restricted"));
        assert_eq!(p.audit, None);
    }
}
