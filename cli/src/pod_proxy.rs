//! Reading an agent's `/stats` through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/stats`), so `status` works
//! from anywhere kubectl works, without a port-forward.
//!
//! kube-rs has no typed pod proxy, so the request is built by hand and sent
//! with [`kube::Client::request_text`].

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use serde::{Deserialize, Serialize};

use crate::sidecar::{AGENT_CONTAINER, DEFAULT_METRICS_PORT, METRICS_PORT_NAME};

/// The port of a pod's agent endpoint: its `bpc-metrics` container port
/// (`attach --metrics-port` moves it), else the default. The pod proxy takes
/// only a number, not a port name.
pub fn metrics_port(pod: &Pod) -> u16 {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == AGENT_CONTAINER))
        .and_then(|c| c.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME)))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(DEFAULT_METRICS_PORT)
}

/// The agent `GET /stats` JSON (shared contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Agent version.
    pub version: String,
    /// Workload key, `0x%08x`.
    pub key: String,
    /// `namespace/kind/name` or null.
    pub workload: Option<String>,
    /// Capture interface.
    pub interface: String,
    /// Effective BPF filter.
    pub filter: String,
    /// GRE profile (`standard` | `netis`).
    pub profile: String,
    /// Oversize policy.
    pub oversize: String,
    /// Seconds since the agent started.
    pub uptime_seconds: f64,
    /// Capture counters.
    pub capture: CaptureStats,
    /// One entry per collector.
    pub collectors: Vec<CollectorStats>,
    /// The agent's own health verdict.
    pub health: Health,
}

/// Capture counters of `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Frames captured.
    pub packets: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// Frames the kernel dropped (socket buffer full).
    pub kernel_drops: u64,
    /// Frames the interface dropped.
    pub interface_drops: u64,
    /// Frames cut at the snap length.
    pub truncated: u64,
    /// Super-frames split into segments.
    pub segmented: u64,
    /// Frames dropped by the pps/Mbps limit.
    pub rate_limited: u64,
    /// Seconds since the last captured frame, null before the first.
    pub last_packet_age_seconds: Option<f64>,
}

/// Per-collector counters of `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorStats {
    /// Collector as configured.
    pub host: String,
    /// Resolved address, null until resolved.
    pub address: Option<String>,
    /// GRE packets sent.
    pub sent_packets: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Send errors by class.
    pub errors: SendErrors,
    /// Seconds since the last successful send, null before the first.
    pub last_send_age_seconds: Option<f64>,
}

/// Send error counters of one collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendErrors {
    /// EHOSTUNREACH / ENETUNREACH / ECONNREFUSED (ICMP unreachable).
    pub unreachable: u64,
    /// ENOBUFS / EAGAIN.
    pub no_buffer: u64,
    /// DNS resolution failures.
    pub resolve: u64,
    /// Anything else.
    pub other: u64,
}

impl SendErrors {
    /// Sum of all classes.
    pub fn total(&self) -> u64 {
        self.unreachable + self.no_buffer + self.resolve + self.other
    }
}

/// The agent's `health` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the agent considers itself healthy.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// Why an agent's stats could not be read; turned into a verdict, never a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The API server or the pod answered with an error status.
    Status {
        /// HTTP status code.
        code: u16,
        /// Message from the server.
        message: String,
    },
    /// The connection or request failed.
    Transport(String),
    /// The body was not the `/stats` JSON.
    Decode(String),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Status { code, message } => write!(f, "pod proxy returned {code}: {message}"),
            ProxyError::Transport(e) => write!(f, "pod proxy request failed: {e}"),
            ProxyError::Decode(e) => write!(f, "agent /stats is not valid JSON: {e}"),
        }
    }
}

/// API server path of an agent endpoint through the pod proxy.
pub fn proxy_path(namespace: &str, pod: &str, port: u16, endpoint: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{endpoint}")
}

/// Fetches and decodes an agent's `/stats`.
pub async fn fetch_stats(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<AgentStats, ProxyError> {
    let req = http::Request::get(proxy_path(namespace, pod, port, "stats"))
        .body(Vec::new())
        .map_err(|e| ProxyError::Transport(e.to_string()))?;
    let text = client.request_text(req).await.map_err(|e| match e {
        kube::Error::Api(status) => ProxyError::Status { code: status.code, message: status.message },
        other => ProxyError::Transport(other.to_string()),
    })?;
    serde_json::from_str(&text).map_err(|e| ProxyError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_path_names_the_metrics_port() {
        assert_eq!(
            proxy_path("shop", "web-1", 9469, "stats"),
            "/api/v1/namespaces/shop/pods/web-1:9469/proxy/stats"
        );
    }

    fn pod_with_agent_ports(ports: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [
                {"name": "app", "ports": [{"name": "bpc-metrics", "containerPort": 8080}]},
                {"name": "bpc-agent", "ports": ports}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn the_metrics_port_is_the_agent_containers_bpc_metrics_port() {
        let moved = pod_with_agent_ports(serde_json::json!([{"name": "bpc-metrics", "containerPort": 9500}]));
        assert_eq!(metrics_port(&moved), 9500);
        // Another container's port of the same name is not the agent's.
        assert_eq!(metrics_port(&pod_with_agent_ports(serde_json::json!([]))), DEFAULT_METRICS_PORT);
    }

    #[test]
    fn contract_stats_json_decodes() {
        let text = include_str!("../../testdata/status/agent-stats.json");
        let stats: AgentStats = serde_json::from_str(text).unwrap();
        assert_eq!(stats.key, "0x1234abcd");
        assert_eq!(stats.collectors[0].errors.total(), 0);
        assert_eq!(stats.capture.last_packet_age_seconds, Some(1.2));
        assert!(stats.health.ok);
    }
}
