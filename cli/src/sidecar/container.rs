//! The agent container: what every form shares ([`container`], also the
//! base of `capture`'s ephemeral container), and what its form adds where
//! it goes into a template.

use bpc_contract::env;
use serde_json::{Value, json};

use super::{
    AGENT_BINARY, AGENT_CONTAINER, CONTAINER_LINGER_SECONDS, CapabilityMode, METRICS_PORT_NAME,
    RUNTIME_DEFAULT_CAPABILITIES, Sidecar, SidecarForm,
};

/// The sidecar container for a workload.
pub fn container(sidecar: &Sidecar) -> Value {
    let o = &sidecar.options;
    let mut env = vec![
        json!({"name": env::COLLECTOR, "value": o.collectors.join(",")}),
        json!({"name": env::WORKLOAD, "value": sidecar.workload.path()}),
    ];
    let mut optional = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            env.push(json!({"name": name, "value": v}));
        }
    };
    optional(env::FILTER, o.filter.clone());
    optional(env::INTERFACE, o.interface.clone());
    optional(env::SNAPLEN, o.snaplen.map(|v| v.to_string()));
    optional(env::MAX_PPS, o.max_pps.map(|v| v.to_string()));
    optional(env::MAX_MBPS, o.max_mbps.map(|v| v.to_string()));
    optional(env::OVERSIZE, o.oversize.map(|v| v.to_string()));
    optional(env::GRE_PROFILE, o.gre_profile.map(|v| v.to_string()));
    optional(env::KEY, o.key.map(|k| bpc_wire::WorkloadKey(k).to_string()));
    optional(env::SEND_PATH, o.send_path.map(|v| v.to_string()));
    optional(env::ENCAP, o.encap.map(|v| v.to_string()));
    optional(env::VNI, o.vni.map(|v| v.to_string()));
    optional(env::SESSION, o.session.map(|v| v.to_string()));
    optional(env::BUFFER, o.buffer.map(|v| v.to_string()));
    optional(env::BATCH, o.batch.clone());
    env.push(json!({"name": env::METRICS_ADDR, "value": format!("0.0.0.0:{}", o.metrics_port)}));
    if o.metrics_private {
        env.push(json!({"name": env::METRICS_PRIVATE, "value": "true"}));
    }
    for (name, path) in env::DOWNWARD_API {
        env.push(json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }
    let capabilities = match sidecar.capabilities {
        CapabilityMode::Default => json!({
            "drop": RUNTIME_DEFAULT_CAPABILITIES.iter().filter(|c| **c != "NET_RAW").collect::<Vec<_>>()
        }),
        CapabilityMode::Add => json!({"drop": ["ALL"], "add": ["NET_RAW"]}),
    };
    let mut agent = json!({
        "name": AGENT_CONTAINER,
        "image": o.image(),
        "env": env,
        // Liveness only: a readiness probe would take the business pod out of
        // its Service whenever capture has a problem. /livez, not /healthz: a
        // collector outage makes /healthz 503, and restarting the agent for
        // it cures nothing (seen on the real cluster: every agent restarted
        // while the sink was down).
        // The handler last, in both modes, so that switching --metrics-private
        // edits a manifest in place (keys removed and added at the end).
        "livenessProbe": {
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
            "httpGet": {"path": "/livez", "port": METRICS_PORT_NAME}
        },
        "resources": {
            "requests": {"cpu": o.cpu, "memory": o.memory},
            "limits": {"cpu": o.cpu_limit, "memory": o.memory_limit}
        },
        // Root because Kubernetes never gives a non-root process the
        // capabilities added to its container; the capability set is what
        // limits the agent, and privilege escalation stays off.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": capabilities,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "terminationMessagePolicy": "FallbackToLogsOnError"
    });
    if o.metrics_private {
        // The kubelet's httpGet dials the pod IP, where nothing listens now:
        // the agent checks its own loopback endpoint instead (it inherits
        // the container's BPC_METRICS_ADDR and BPC_METRICS_PRIVATE). A port
        // nobody can reach is not declared, so no scraper tries it.
        agent["livenessProbe"] = json!({
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 2,
            "exec": {"command": [AGENT_BINARY, "--check-health"]}
        });
    } else {
        // Last, like the probe's handler: switching --metrics-private then
        // only removes or appends keys, which a manifest is edited in place for.
        agent["ports"] =
            json!([{"name": METRICS_PORT_NAME, "containerPort": o.metrics_port, "protocol": "TCP"}]);
    }
    agent
}

/// The agent container as it goes into `template`: [`container`] plus what
/// its form needs. Both forms keep serving the reason when capture cannot
/// start (`BPC_ON_ERROR=serve`): an agent that exits would keep a native
/// sidecar's pod from starting and a container's pod from being Ready.
pub(super) fn placed_container(sidecar: &Sidecar, template: &Value) -> Value {
    let mut agent = container(sidecar);
    let push_env = |agent: &mut Value, name: &str, value: String| {
        if let Some(list) = agent["env"].as_array_mut() {
            list.push(json!({"name": name, "value": value}));
        }
    };
    push_env(&mut agent, env::ON_ERROR, bpc_contract::OnError::Serve.to_string());
    match sidecar.form {
        SidecarForm::Native => {
            let handler = if sidecar.options.metrics_private {
                ("exec", json!({"command": [AGENT_BINARY, "--check-startup"]}))
            } else {
                ("httpGet", json!({"path": "/startupz", "port": METRICS_PORT_NAME}))
            };
            // The agent's /startupz passes once the capture socket is bound
            // with its filter attached, or once the agent has given up (the
            // reason stays in /healthz and /stats), or after its own bound
            // (docs/agent.md): the app's containers start after capture is
            // live, and never later than that bound. The probe's own limit
            // (30 s) is only a backstop for an agent that cannot answer.
            let mut probe = json!({"periodSeconds": 1, "failureThreshold": 30, "timeoutSeconds": 2});
            probe[handler.0] = handler.1;
            if let Some(fields) = agent.as_object_mut() {
                fields.shift_insert(2, "restartPolicy".into(), json!("Always"));
                let at = fields.keys().position(|k| k == "livenessProbe").map_or(fields.len(), |i| i + 1);
                fields.shift_insert(at, "startupProbe".into(), probe);
            }
        }
        SidecarForm::Container => {
            // SIGTERM reaches the app and the agent together: the agent keeps
            // capturing the app's shutdown while the pod has traffic, within
            // the grace period the kubelet gives the pod.
            let grace = template.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64);
            let linger = CONTAINER_LINGER_SECONDS.min(grace.unwrap_or(30) - 1);
            if linger > 0 {
                push_env(&mut agent, env::LINGER, format!("{linger}s"));
            }
        }
    }
    agent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::fixture::*;
    use crate::sidecar::{GreProfile, Oversize, SendPath, VERSION, record};

    #[test]
    fn container_carries_the_agent_env_downward_api_port_and_probe() {
        let c = container(&sidecar());
        assert_eq!(c["name"], AGENT_CONTAINER);
        assert_eq!(c["image"], format!("ghcr.io/kubectl-bpc/bpc-agent:{VERSION}"));
        assert_eq!(env(&c, "BPC_COLLECTOR").unwrap()["value"], "198.18.0.2");
        assert_eq!(env(&c, "BPC_WORKLOAD").unwrap()["value"], "shop/deployment/web");
        assert_eq!(env(&c, "POD_IP").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP");
        assert_eq!(env(&c, "NODE_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
        assert!(env(&c, "BPC_FILTER").is_none(), "unset options are not passed");
        assert_eq!(c["ports"][0], json!({"name": "bpc-metrics", "containerPort": 9469, "protocol": "TCP"}));
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
        assert!(c.get("readinessProbe").is_none(), "a readiness probe would take the pod out of its Service");
        assert_eq!(c["resources"]["requests"]["cpu"], "50m");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    }

    #[test]
    fn encap_vni_and_session_travel_as_their_agent_variables() {
        let mut s = sidecar();
        s.options.encap = Some(crate::sidecar::Encap::ErspanIii);
        s.options.session = Some(5);
        let c = container(&s);
        let env = c["env"].as_array().unwrap();
        let get = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
        assert_eq!(get("BPC_ENCAP"), Some(serde_json::json!("erspan-iii")));
        assert_eq!(get("BPC_SESSION"), Some(serde_json::json!("5")));
        assert_eq!(get("BPC_VNI"), None, "unset options stay out of the environment");
    }

    #[test]
    fn options_map_to_agent_env() {
        let mut s = sidecar();
        s.options.collectors.push("collector.obs.svc".into());
        s.options.filter = Some("tcp port 443".into());
        s.options.interface = Some("eth1".into());
        s.options.snaplen = Some(128);
        s.options.max_pps = Some(5000);
        s.options.max_mbps = Some(100);
        s.options.oversize = Some(Oversize::Truncate);
        s.options.gre_profile = Some(GreProfile::Netis);
        s.options.key = Some(0x10);
        s.options.send_path = Some(SendPath::Raw);
        s.options.metrics_port = 9500;
        let c = container(&s);
        for (name, value) in [
            ("BPC_COLLECTOR", "198.18.0.2,collector.obs.svc"),
            ("BPC_FILTER", "tcp port 443"),
            ("BPC_INTERFACE", "eth1"),
            ("BPC_SNAPLEN", "128"),
            ("BPC_MAX_PPS", "5000"),
            ("BPC_MAX_MBPS", "100"),
            ("BPC_OVERSIZE", "truncate"),
            ("BPC_GRE_PROFILE", "netis"),
            ("BPC_KEY", "0x00000010"),
            ("BPC_SEND_PATH", "raw"),
            ("BPC_METRICS_ADDR", "0.0.0.0:9500"),
        ] {
            assert_eq!(env(&c, name).unwrap()["value"], value, "{name}");
        }
        assert_eq!(c["ports"][0]["containerPort"], 9500);
    }

    #[test]
    fn metrics_private_sets_the_env_drops_the_port_and_probes_by_exec() {
        let mut s = sidecar();
        s.options.metrics_private = true;
        let c = container(&s);
        assert_eq!(env(&c, "BPC_METRICS_PRIVATE").unwrap()["value"], "true");
        assert_eq!(env(&c, "BPC_METRICS_ADDR").unwrap()["value"], "0.0.0.0:9469");
        assert!(c.get("ports").is_none(), "nothing outside the pod can reach the port");
        assert_eq!(
            c["livenessProbe"]["exec"]["command"],
            json!(["/usr/local/bin/bpc-agent", "--check-health"])
        );
        assert!(c["livenessProbe"].get("httpGet").is_none());
        assert_eq!(c["livenessProbe"]["timeoutSeconds"], 2);
        let r = record(&s);
        assert!(serde_json::to_string(&r).unwrap().contains("\"metricsPrivate\":true"));
        // Default options record neither field: existing annotations stay byte-identical.
        let default = serde_json::to_string(&record(&sidecar())).unwrap();
        assert!(!default.contains("metricsPrivate") && !default.contains("buffer"), "{default}");
        assert!(env(&container(&sidecar()), "BPC_METRICS_PRIVATE").is_none());
    }

    #[test]
    fn buffer_sets_bpc_buffer() {
        let mut s = sidecar();
        assert!(env(&container(&s), "BPC_BUFFER").is_none());
        s.options.buffer = Some(64);
        assert_eq!(env(&container(&s), "BPC_BUFFER").unwrap()["value"], "64");
    }

    #[test]
    fn batch_sets_bpc_batch_and_default_options_record_none() {
        let mut s = sidecar();
        assert!(env(&container(&s), "BPC_BATCH").is_none());
        assert!(!serde_json::to_string(&record(&s)).unwrap().contains("batch"));
        s.options.batch = Some("250ms".into());
        assert_eq!(env(&container(&s), "BPC_BATCH").unwrap()["value"], "250ms");
        assert!(serde_json::to_string(&record(&s)).unwrap().contains("\"batch\":\"250ms\""));
    }

    #[test]
    fn default_mode_drops_every_runtime_default_capability_but_net_raw_and_adds_none() {
        let c = container(&sidecar());
        let drop: Vec<&str> = c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(drop.len(), 13);
        assert!(!drop.contains(&"NET_RAW"));
        assert!(c["securityContext"]["capabilities"].get("add").is_none());
        assert_eq!(c["securityContext"]["runAsUser"], 0);
    }

    #[test]
    fn add_mode_drops_all_and_adds_net_raw() {
        let mut s = sidecar();
        s.capabilities = CapabilityMode::Add;
        let c = container(&s);
        assert_eq!(c["securityContext"]["capabilities"], json!({"drop": ["ALL"], "add": ["NET_RAW"]}));
    }
}
