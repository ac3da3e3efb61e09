//! [`WorkloadKey`]: the stable 32-bit GRE key of a workload.
//!
//! The key is FNV-1a (32-bit) over the UTF-8 bytes of
//! `"<namespace>/<kind>/<name>"`, where `kind` is the lower-case singular
//! resource kind (`deployment`, `statefulset`, `daemonset`): every name
//! kubectl accepts for a kind ([`WorkloadKind::from_name`]) gives the same
//! key. Pods come and go,
//! their names and IPs change with every restart, rollout and reschedule; the
//! workload they belong to does not, so neither does its key. A collector can
//! therefore tell workloads apart by the GRE key alone.
//!
//! ```
//! use bpc_wire::WorkloadKey;
//! let key = WorkloadKey::from_workload("shop", "Deployment", "checkout");
//! assert_eq!(key, WorkloadKey::from_workload("shop", "deployment", "checkout"));
//! assert_eq!(key.to_string().parse::<WorkloadKey>().unwrap(), key);
//! ```

use std::fmt;
use std::str::FromStr;

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a, 32-bit, over several byte slices as if they were one.
fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut hash = FNV_OFFSET_BASIS;
    for part in parts {
        for &byte in *part {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// The GRE key of one workload (see the module documentation for the algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey(pub u32);

impl WorkloadKey {
    /// The key of the workload `namespace/kind/name`. `kind` is
    /// case-insensitive and may be a kubectl short name (`deploy`, `sts`, `ds`).
    pub fn from_workload(namespace: &str, kind: &str, name: &str) -> Self {
        let kind = canonical_kind(kind);
        Self(fnv1a32(&[namespace.as_bytes(), b"/", kind.as_bytes(), b"/", name.as_bytes()]))
    }

    /// Parses `"namespace/kind/name"` (the agent's `BPC_WORKLOAD`) and returns
    /// the key. `None` unless there are exactly three non-empty parts.
    pub fn from_workload_path(path: &str) -> Option<Self> {
        let mut parts = path.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(kind), Some(name), None)
                if !ns.is_empty() && !kind.is_empty() && !name.is_empty() =>
            {
                Some(Self::from_workload(ns, kind, name))
            }
            _ => None,
        }
    }

    /// Best guess at the workload of a pod from its name alone, for agents
    /// started without `BPC_WORKLOAD`: `web-7d4b9c8f5-x2k9p` (Deployment's
    /// ReplicaSet hash and pod suffix) gives `deployment/web`, `db-0` gives
    /// `statefulset/db`, `agent-x2k9p` gives `daemonset/agent`. Returns the
    /// kind and name it guessed.
    pub fn guess_workload_of_pod(pod_name: &str) -> (&'static str, &str) {
        let segments: Vec<&str> = pod_name.rsplitn(3, '-').collect();
        let is_suffix =
            |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let is_rs_hash =
            |s: &str| (6..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
        match segments.as_slice() {
            [suffix, hash, name] if is_suffix(suffix) && is_rs_hash(hash) => {
                (WorkloadKind::Deployment.lower(), name)
            }
            [ordinal, rest @ ..]
                if !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() =>
            {
                (WorkloadKind::StatefulSet.lower(), &pod_name[..pod_name.len() - ordinal.len() - 1])
            }
            [suffix, rest @ ..] if is_suffix(suffix) && !rest.is_empty() => {
                (WorkloadKind::DaemonSet.lower(), &pod_name[..pod_name.len() - suffix.len() - 1])
            }
            _ => (WorkloadKind::Pod.lower(), pod_name),
        }
    }

    /// The raw 32-bit value, as carried in the GRE key field.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The key as an agent of `profile` sends it, and as a receiver reports
    /// the stream: itself for the standard profile; for the netis profile
    /// its low 28 bits (the keybit), since the top 4 bits of that GRE key
    /// carry the direction. The one rule the agent, `verify`, `map`, the
    /// receiver's labels and `--expect` all apply.
    pub const fn as_sent(self, profile: crate::GreProfile) -> WorkloadKey {
        match profile {
            crate::GreProfile::Standard => self,
            crate::GreProfile::Netis => WorkloadKey(self.0 & crate::NetisKey::MAX_KEYBIT),
        }
    }
}

/// A kind of object that holds pods: the workloads whose pod template the
/// sidecar is attached to, and the Jobs and bare Pods that manifests carry
/// (their templates are immutable once created, so only `inject` edits them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` CronJob: its job template's pod template.
    CronJob,
    /// `batch/v1` Job: its pod template is immutable once created.
    Job,
    /// `v1` Pod: the pod itself; immutable containers once created.
    Pod,
}

/// Every name kubectl accepts for each kind (lower case): the one alias
/// table, read by the key derivation and by the plugin's argument parser.
const KIND_NAMES: [(WorkloadKind, &[&str]); 6] = [
    (
        WorkloadKind::Deployment,
        &["deploy", "deployment", "deployments", "deployment.apps", "deployments.apps"],
    ),
    (
        WorkloadKind::StatefulSet,
        &["sts", "statefulset", "statefulsets", "statefulset.apps", "statefulsets.apps"],
    ),
    (WorkloadKind::DaemonSet, &["ds", "daemonset", "daemonsets", "daemonset.apps", "daemonsets.apps"]),
    (WorkloadKind::CronJob, &["cj", "cronjob", "cronjobs", "cronjob.batch", "cronjobs.batch"]),
    (WorkloadKind::Job, &["job", "jobs", "job.batch", "jobs.batch"]),
    (WorkloadKind::Pod, &["po", "pod", "pods"]),
];

impl WorkloadKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
        WorkloadKind::Pod,
    ];

    /// The kinds whose live pod template `attach` can change: every future
    /// pod (or Job) of them carries the sidecar.
    pub const ATTACHABLE: [WorkloadKind; 4] =
        [WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet, WorkloadKind::CronJob];

    /// Whether `attach` can change the live object's pod template (a Job's
    /// and a Pod's are immutable once created).
    pub const fn is_attachable(self) -> bool {
        !matches!(self, WorkloadKind::Job | WorkloadKind::Pod)
    }

    /// The Kubernetes `kind` ("Deployment").
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The lower-case singular name ("deployment"): the key's and
    /// `BPC_WORKLOAD`'s spelling, and kubectl's `KIND/NAME`.
    pub const fn lower(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Job => "job",
            WorkloadKind::Pod => "pod",
        }
    }

    /// kubectl's qualified resource name ("deployment.apps"), as its messages
    /// name objects.
    pub const fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment.apps",
            WorkloadKind::StatefulSet => "statefulset.apps",
            WorkloadKind::DaemonSet => "daemonset.apps",
            WorkloadKind::CronJob => "cronjob.batch",
            WorkloadKind::Job => "job.batch",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The `apiVersion` of the kind's objects.
    pub const fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => "apps/v1",
            WorkloadKind::CronJob | WorkloadKind::Job => "batch/v1",
            WorkloadKind::Pod => "v1",
        }
    }

    /// Where the pod template sits in an object of this kind, as a JSON
    /// pointer (a Pod is its own template: metadata and spec).
    pub const fn template_pointer(self) -> &'static str {
        match self {
            WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::Job => "/spec/template",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template",
            WorkloadKind::Pod => "",
        }
    }

    /// The kind of a manifest's or owner reference's `kind` field (exact, as
    /// the API spells it).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind of any name kubectl accepts for it, in any case: `deploy`,
    /// `Deployment`, `deployments`, `deployment.apps`, and likewise for
    /// the other kinds (`sts`, `ds`, `cj`, `job`, `po`).
    pub fn from_name(name: &str) -> Option<WorkloadKind> {
        let lower = name.to_ascii_lowercase();
        KIND_NAMES.iter().find(|(_, names)| names.contains(&lower.as_str())).map(|(kind, _)| *kind)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical lower-case kind for a kind or any kubectl name of it;
/// other kinds (`Pod`, `Service`, `Node`...) lower-cased.
pub fn canonical_kind(kind: &str) -> String {
    match WorkloadKind::from_name(kind) {
        Some(k) => k.lower().to_owned(),
        None => kind.to_ascii_lowercase(),
    }
}

impl From<u32> for WorkloadKey {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl fmt::Display for WorkloadKey {
    /// Hexadecimal with `0x` and 8 digits, as Wireshark shows `gre.key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// Why a string is not a [`WorkloadKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workload key {0:?}: expected a 32-bit number, decimal (305419896) or hex (0x12345678)")]
pub struct ParseKeyError(pub String);

impl FromStr for WorkloadKey {
    type Err = ParseKeyError;

    /// Accepts decimal or `0x`-prefixed hexadecimal.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => t.parse::<u32>(),
        };
        parsed.map(Self).map_err(|_| ParseKeyError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_published_test_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a32(&[b""]), 0x811c9dc5);
        assert_eq!(fnv1a32(&[b"a"]), 0xe40c292c);
        assert_eq!(fnv1a32(&[b"foobar"]), 0xbf9cf968);
        assert_eq!(fnv1a32(&[b"foo", b"bar"]), 0xbf9cf968);
    }

    #[test]
    fn key_is_fnv1a_of_namespace_kind_name() {
        let key = WorkloadKey::from_workload("shop", "Deployment", "checkout");
        assert_eq!(key.get(), fnv1a32(&[b"shop/deployment/checkout"]));
        assert_eq!(WorkloadKey::from_workload("shop", "deploy", "checkout"), key);
        assert_eq!(WorkloadKey::from_workload_path("shop/deployment/checkout"), Some(key));
    }

    #[test]
    fn every_kubectl_name_of_a_kind_gives_the_key_of_its_canonical_name() {
        let key = WorkloadKey::from_workload("shop", "deployment", "checkout");
        for name in ["deploy", "Deployment", "deployments", "deployment.apps", "Deployments.apps"] {
            assert_eq!(WorkloadKey::from_workload("shop", name, "checkout"), key, "{name}");
        }
        for (kind, names) in KIND_NAMES {
            for name in names.iter().copied() {
                assert_eq!(WorkloadKind::from_name(name), Some(kind), "{name}");
                assert_eq!(canonical_kind(name), kind.lower(), "{name}");
            }
        }
        assert_eq!(canonical_kind("Service"), "service", "other kinds are only lower-cased");
        assert_eq!(WorkloadKind::from_name("cj"), Some(WorkloadKind::CronJob));
        assert_eq!(WorkloadKind::from_name("replicaset"), None);
    }

    #[test]
    fn different_workloads_get_different_keys() {
        let a = WorkloadKey::from_workload("shop", "deployment", "checkout");
        assert_ne!(a, WorkloadKey::from_workload("shop", "statefulset", "checkout"));
        assert_ne!(a, WorkloadKey::from_workload("shop2", "deployment", "checkout"));
        assert_ne!(a, WorkloadKey::from_workload("shop", "deployment", "checkout2"));
    }

    #[test]
    fn the_key_as_sent_is_the_keybit_under_netis_and_the_key_itself_otherwise() {
        let key = WorkloadKey(0x773f_9626);
        assert_eq!(key.as_sent(crate::GreProfile::Standard), key);
        assert_eq!(key.as_sent(crate::GreProfile::Netis), WorkloadKey(0x073f_9626));
        let keybit = key.as_sent(crate::GreProfile::Netis);
        assert_eq!(keybit.as_sent(crate::GreProfile::Netis), keybit, "a keybit is sent as it is");
    }

    #[test]
    fn malformed_workload_paths_are_rejected() {
        for bad in ["", "a/b", "a/b/c/d", "/b/c", "a//c", "a/b/"] {
            assert_eq!(WorkloadKey::from_workload_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn display_and_parse_round_trip_in_hex_and_decimal() {
        let key = WorkloadKey(0x1234_5678);
        assert_eq!(key.to_string(), "0x12345678");
        assert_eq!("0x12345678".parse::<WorkloadKey>().unwrap(), key);
        assert_eq!("305419896".parse::<WorkloadKey>().unwrap(), key);
        assert_eq!("0X0".parse::<WorkloadKey>().unwrap(), WorkloadKey(0));
        for bad in ["", "0x", "-1", "4294967296", "0x1ffffffff", "key"] {
            let err = bad.parse::<WorkloadKey>().unwrap_err();
            assert!(err.to_string().contains("invalid workload key"), "{bad:?}");
        }
    }

    #[test]
    fn pod_names_map_to_their_workload() {
        assert_eq!(WorkloadKey::guess_workload_of_pod("web-7d4b9c8f5-x2k9p"), ("deployment", "web"));
        assert_eq!(
            WorkloadKey::guess_workload_of_pod("my-api-server-5f6c7d8b9-abcde"),
            ("deployment", "my-api-server")
        );
        assert_eq!(WorkloadKey::guess_workload_of_pod("db-0"), ("statefulset", "db"));
        assert_eq!(WorkloadKey::guess_workload_of_pod("kafka-broker-12"), ("statefulset", "kafka-broker"));
        assert_eq!(WorkloadKey::guess_workload_of_pod("node-agent-x2k9p"), ("daemonset", "node-agent"));
        assert_eq!(WorkloadKey::guess_workload_of_pod("standalone"), ("pod", "standalone"));
    }
}
