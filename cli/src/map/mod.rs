//! `kubectl bpc map`: address -> workload table, so a collector can label each
//! GRE stream (keyed by workload key and source pod IP) and each peer of the
//! captured flows while pod IPs churn: pod IPs, Service ClusterIPs (with the
//! workloads the selector picks) and node InternalIPs.
//!
//! Owners are resolved from one list of ReplicaSets, never one GET per pod:
//! Pod -> ReplicaSet -> Deployment, StatefulSet/DaemonSet/Job directly, and a
//! bare pod is its own workload (kind `Pod`).

mod owners;
mod render;
mod rows;
mod state;
mod watch;

use std::io::Write;

use kube::Client;

use crate::Error;

pub use crate::sidecar::AGENT_CONTAINER;

/// One row of the map: the shared `kubectl bpc map -o json` contract, defined
/// once in bpc-sim (which reads it with `--map FILE`).
pub use bpc_receiver::map::{Backend, MAP_SCHEMA_VERSION, MapEntry, RowType};

pub use owners::*;
pub use render::*;
pub use rows::*;
pub use state::*;
pub use watch::*;

/// Output format of `map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MapFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The JSON array of the shared contract.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Arguments of `kubectl bpc map`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapArgs {
    /// Stream changes as JSON lines (`{"event":"add|update|delete",...}`) until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = MapFormat::Table)]
    pub output: MapFormat,
}

/// Runs `kubectl bpc map`: prints the map once, or with `--watch` streams
/// changes as JSON lines until the watch ends.
pub async fn run(args: &MapArgs, client: &Client, namespace: Option<&str>) -> Result<(), Error> {
    if !args.watch {
        let rows = fetch_map(client, namespace).await?;
        return render(&rows, args.output, &mut crate::output::stdout());
    }
    watch(client, namespace, |ev| {
        let mut out = crate::output::stdout();
        serde_json::to_writer(&mut out, &ev)?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    })
    .await
}

/// Fixtures shared by the map's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{Pod, Service};
    use serde_json::json;

    pub(crate) fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    pub(crate) fn web_pod(ip: &str, attached: bool) -> Pod {
        let mut containers = vec![json!({"name": "web", "image": "nginx"})];
        if attached {
            containers.push(json!({"name": "bpc-agent", "image": "bpc-agent"}));
        }
        pod(json!({
            "metadata": {"name": "web-5f6c7d8b9-abcde", "namespace": "shop",
                "labels": {"pod-template-hash": "5f6c7d8b9"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5f6c7d8b9",
                    "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": containers},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}
        }))
    }

    pub(crate) fn web_rs() -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-5f6c7d8b9", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "u0", "controller": true}]},
        }))
        .unwrap()
    }

    pub(crate) fn service(name: &str, ips: serde_json::Value, selector: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips, "selector": selector}}))
        .unwrap()
    }

    pub(crate) fn db_pod(ip: &str) -> Pod {
        pod(json!({"metadata": {"name": "db-0", "namespace": "shop", "labels": {"app": "db", "tier": "data"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u",
                    "controller": true}]},
            "spec": {"containers": []}, "status": {"podIP": ip}}))
    }

    pub(crate) fn web_pod_labelled(ip: &str) -> Pod {
        let mut p = web_pod(ip, true);
        p.metadata.labels.as_mut().unwrap().insert("app".into(), "web".into());
        p.metadata.labels.as_mut().unwrap().insert("tier".into(), "data".into());
        p
    }
}
