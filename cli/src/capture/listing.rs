//! The capture containers of a pod, as `status --captures` lists them.

use k8s_openapi::api::core::v1::Pod;

use super::{CONTAINER_PREFIX, ContainerState, container_state};

/// One `kubectl bpc capture` container of a pod, as `status --captures` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureListing {
    /// `bpc-capture-<id>`.
    pub container: String,
    /// When it started (RFC 3339), once it has.
    pub started: Option<String>,
    /// `waiting (reason)`, `running`, `finished`, `failed (exit N)`.
    pub state: String,
    /// What the agent said when it ended (its termination message): the final tally of a
    /// finished capture, the error of a failed one.
    pub report: Option<String>,
}

/// The capture containers of a pod, for `status --captures`.
pub fn captures_of(pod: &Pod) -> Vec<CaptureListing> {
    let Some(spec) = pod.spec.as_ref().and_then(|s| s.ephemeral_containers.as_ref()) else {
        return Vec::new();
    };
    spec.iter()
        .filter(|c| c.name.starts_with(CONTAINER_PREFIX))
        .map(|c| {
            let (started, state, report) = match container_state(pod, &c.name) {
                ContainerState::Waiting(r) => {
                    (None, format!("waiting{}", r.map(|r| format!(" ({r})")).unwrap_or_default()), None)
                }
                ContainerState::Running(s) => (s, "running".into(), None),
                ContainerState::Terminated { exit_code, message, started, .. } => {
                    let state = match exit_code {
                        0 => "finished".to_owned(),
                        n => format!("failed (exit {n})"),
                    };
                    let report = message
                        .as_deref()
                        .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()))
                        .map(|l| l.trim_start_matches("bpc-agent: ").to_owned());
                    (started, state, report)
                }
            };
            CaptureListing { container: c.name.clone(), started, state, report }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn captures_are_listed_with_what_the_agent_reported_and_other_ephemeral_containers_are_not() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "app"}], "ephemeralContainers": [
                {"name": "bpc-capture-a"}, {"name": "bpc-capture-b"}, {"name": "bpc-capture-c"}, {"name": "debugger"}]},
            "status": {"ephemeralContainerStatuses": [
                {"name": "bpc-capture-a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "startedAt": "2026-12-02T01:00:00Z",
                     "message": "bpc-agent: stopped after 60.0s: captured 1200 packets\n"}}},
                {"name": "bpc-capture-b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 2, "message": "bpc-agent: no CAP_NET_RAW\n"}}},
                {"name": "bpc-capture-c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-12-02T01:05:00Z"}}},
                {"name": "debugger", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}]}
        }))
        .unwrap();
        let listed = captures_of(&pod);
        let row = |c: &str, started: Option<&str>, state: &str, report: Option<&str>| CaptureListing {
            container: c.into(),
            started: started.map(Into::into),
            state: state.into(),
            report: report.map(Into::into),
        };
        assert_eq!(
            listed,
            [
                row(
                    "bpc-capture-a",
                    Some("2026-12-02T01:00:00Z"),
                    "finished",
                    Some("stopped after 60.0s: captured 1200 packets")
                ),
                row("bpc-capture-b", None, "failed (exit 2)", Some("no CAP_NET_RAW")),
                row("bpc-capture-c", Some("2026-12-02T01:05:00Z"), "running", None),
            ]
        );
    }
}
