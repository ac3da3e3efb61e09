//! The ephemeral container of a capture: the sidecar's container, made fit
//! for `pods/ephemeralcontainers` and for a bounded, stdin-controlled run.

use bpc_contract::env;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::{CONTAINER_PREFIX, Capture};
use crate::sidecar::{self, Sidecar};
use crate::workload::{WorkloadId, WorkloadKind};

/// The agent's endpoint inside the pod: loopback (an ephemeral container
/// cannot declare a port, and must not collide with a sidecar's 9469), any
/// free port.
const METRICS_ADDR: &str = "127.0.0.1:0";

/// The ephemeral container for one pod: the sidecar's container (same
/// environment, key, profile, capabilities and security context), renamed,
/// without the fields ephemeral containers may not have, and with the
/// agent switched to a bounded, stdin-controlled capture.
pub fn capture_container(
    capture: &Capture,
    workload: Option<&WorkloadId>,
    namespace: &str,
    mode: sidecar::CapabilityMode,
    id: &str,
) -> Value {
    let placeholder =
        WorkloadId { namespace: namespace.to_owned(), kind: WorkloadKind::Deployment, name: String::new() };
    let sidecar = Sidecar {
        workload: workload.cloned().unwrap_or(placeholder),
        options: capture.agent.clone(),
        capabilities: mode,
        allow_host_network: false,
        // Not placed in a template: the ephemeral container is built from the common container.
        form: sidecar::SidecarForm::Container,
    };
    let mut c = sidecar::container(&sidecar);
    if let Some(fields) = c.as_object_mut() {
        // Forbidden in ephemeral containers (the API server refuses them).
        for f in ["ports", "livenessProbe", "readinessProbe", "startupProbe", "resources"] {
            fields.shift_remove(f);
        }
    }
    c["name"] = json!(format!("{CONTAINER_PREFIX}{id}"));
    let mut env: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
    env.retain(|e| {
        let name = e["name"].as_str().unwrap_or_default();
        let drop_collector = name == env::COLLECTOR && capture.pcapng.is_some();
        let drop_workload = name == env::WORKLOAD && workload.is_none();
        !(drop_collector || drop_workload || name == env::METRICS_ADDR)
    });
    let mut add = vec![(env::METRICS_ADDR, METRICS_ADDR.to_owned()), (env::STDIN_CONTROL, "true".into())];
    if capture.pcapng.is_some() {
        add.push((env::WRITE, "-".into()));
    }
    if !capture.duration.is_zero() {
        add.push((env::DURATION, format!("{}ms", capture.duration.as_millis())));
    }
    if let Some(n) = capture.count {
        add.push((env::COUNT, n.to_string()));
    }
    // Before the Downward API variables, with the agent's other settings.
    let at = env.iter().position(|e| e["name"] == env::POD_NAME).unwrap_or(env.len());
    for (i, (name, value)) in add.into_iter().enumerate() {
        env.insert(at + i, json!({"name": name, "value": value}));
    }
    c["env"] = Value::Array(env);
    // stdin for --stdin-control; stdinOnce: the runtime closes it when the
    // plugin's attach ends, which stops the agent even if the plugin dies.
    c["stdin"] = json!(true);
    c["stdinOnce"] = json!(true);
    c["tty"] = json!(false);
    c
}

/// The collectors of the pod's `bpc-agent` sidecar, where they are addresses
/// (a name would have to be resolved by the filter compiler in the pod).
pub fn sidecar_collectors(pod: &Pod) -> Vec<std::net::IpAddr> {
    let Some(agent) = crate::pod_spec::pod_agent(pod) else { return Vec::new() };
    crate::pod_spec::collectors_of(agent).iter().filter_map(|c| c.parse().ok()).collect()
}

/// `filter` (all traffic when None) without GRE sent to `collectors`.
pub fn without_gre_to(filter: Option<&str>, collectors: &[std::net::IpAddr]) -> String {
    let terms: Vec<String> = collectors
        .iter()
        .map(|c| match c {
            std::net::IpAddr::V4(_) => format!("(ip proto 47 and dst host {c})"),
            std::net::IpAddr::V6(_) => format!("(ip6 proto 47 and dst host {c})"),
        })
        .collect();
    let not_sidecar = format!("not ({})", terms.join(" or "));
    match filter {
        Some(f) if !f.trim().is_empty() => format!("({f}) and {not_sidecar}"),
        _ => not_sidecar,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::capture::args::fixture::capture;

    #[test]
    fn a_sidecars_gre_is_left_out_of_the_capture_so_the_two_agents_cannot_echo_each_other() {
        let v4: std::net::IpAddr = "198.18.0.2".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(without_gre_to(None, &[v4]), "not ((ip proto 47 and dst host 198.18.0.2))");
        assert_eq!(
            without_gre_to(Some("tcp port 8080"), &[v4, v6]),
            "(tcp port 8080) and not ((ip proto 47 and dst host 198.18.0.2) or (ip6 proto 47 and dst host 2001:db8::2))"
        );
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "app"},
            {"name": "bpc-agent", "env": [{"name": "BPC_COLLECTOR", "value": "198.18.0.2, collector.obs.svc"}]}
        ]}}))
        .unwrap();
        assert_eq!(sidecar_collectors(&pod), vec![v4], "names are left to the agent");
    }

    #[test]
    fn the_container_is_the_sidecar_without_ports_probes_or_resources_and_stdin_controlled() {
        let a =
            capture(&["pod/a", "-w", "-", "--filter", "tcp port 80", "--count", "5", "--max-pps", "1000"]);
        let c = capture_container(&a, None, "shop", sidecar::CapabilityMode::Default, "abcde");
        assert_eq!(c["name"], "bpc-capture-abcde");
        for f in ["ports", "livenessProbe", "resources"] {
            assert!(c.get(f).is_none(), "{f} present");
        }
        assert_eq!(
            (c["stdin"].clone(), c["stdinOnce"].clone(), c["tty"].clone()),
            (json!(true), json!(true), json!(false))
        );
        let env: BTreeMap<String, Value> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.get("value").cloned().unwrap_or(Value::Null)))
            .collect();
        assert_eq!(env["BPC_WRITE"], "-");
        assert_eq!(env["BPC_DURATION"], "60000ms");
        assert_eq!(env["BPC_COUNT"], "5");
        assert_eq!(env["BPC_FILTER"], "tcp port 80");
        assert_eq!(env["BPC_MAX_PPS"], "1000");
        assert_eq!(env["BPC_METRICS_ADDR"], "127.0.0.1:0");
        assert_eq!(env["BPC_STDIN_CONTROL"], "true");
        assert!(!env.contains_key("BPC_COLLECTOR") && !env.contains_key("BPC_WORKLOAD"));
        assert!(env.contains_key("POD_NAME"));
        // The same security context as the sidecar: NET_RAW kept, the rest dropped.
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert!(
            !c["securityContext"]["capabilities"]["drop"].as_array().unwrap().contains(&json!("NET_RAW"))
        );
    }

    #[test]
    fn with_a_collector_the_container_streams_gre_under_the_workload_key() {
        let a = capture(&[
            "deploy/web",
            "--collector",
            "198.18.0.2",
            "--duration",
            "0",
            "--gre-profile",
            "netis",
        ]);
        let w = WorkloadId { namespace: "shop".into(), kind: WorkloadKind::Deployment, name: "web".into() };
        let c = capture_container(&a, Some(&w), "shop", sidecar::CapabilityMode::Add, "x");
        let env = c["env"].as_array().unwrap();
        let get = |n: &str| env.iter().find(|e| e["name"] == n).map(|e| e["value"].clone());
        assert_eq!(get("BPC_COLLECTOR"), Some(json!("198.18.0.2")));
        assert_eq!(get("BPC_WORKLOAD"), Some(json!("shop/deployment/web")));
        assert_eq!(get("BPC_GRE_PROFILE"), Some(json!("netis")));
        assert_eq!(get("BPC_DURATION"), None, "--duration 0: no limit");
        assert_eq!(get("BPC_WRITE"), None);
        assert_eq!(c["securityContext"]["capabilities"], json!({"drop": ["ALL"], "add": ["NET_RAW"]}));
    }
}
