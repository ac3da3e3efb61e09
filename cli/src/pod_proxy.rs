//! Reading an agent's `/stats` through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/stats`), so `status` works
//! from anywhere kubectl works, without a port-forward.
//!
//! kube-rs has no typed pod proxy, so the request is built by hand and sent
//! with [`kube::Client::request_text`].

pub use bpc_contract::stats::{AgentStats, CaptureStats, CollectorStats, Health, SendErrors};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use crate::sidecar::{DEFAULT_METRICS_PORT, METRICS_PORT_NAME};

/// The port of a pod's agent endpoint: its `bpc-metrics` container port
/// (`attach --metrics-port` moves it), else the default. The pod proxy takes
/// only a number, not a port name.
pub fn metrics_port(pod: &Pod) -> u16 {
    pod.spec
        .as_ref()
        .and_then(crate::pod_spec::agent_of)
        .and_then(|(c, _)| c.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME)))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(DEFAULT_METRICS_PORT)
}

/// Why an agent's stats could not be read; turned into a verdict, never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The API server or the pod answered with an error status.
    #[error("pod proxy returned {code}: {message}")]
    Status {
        /// HTTP status code.
        code: u16,
        /// Message from the server.
        message: String,
    },
    /// The connection or request failed.
    #[error("pod proxy request failed: {0}")]
    Transport(String),
    /// The body was not the `/stats` JSON.
    #[error("agent /stats is not valid JSON: {0}")]
    Decode(String),
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
}
