//! `verify --ephemeral`: ephemeral capture containers stream to the sink,
//! with no rollout.

use std::future::Future;

use bpc_wire::WorkloadKey;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::Error;
use crate::capabilities::CapabilitiesArg;
use crate::capture::{self, Capture, Selection, Target};
use crate::kube_context::Kube;
use crate::pod_spec::{pod_agent, sends_to};
use crate::sidecar::SidecarOptions;

use super::*;

/// `verify --ephemeral`: adds a capture container streaming to the sink to
/// every running pod of the workload and waits until each delivered enough.
/// The captures end by themselves at `--timeout` (Kubernetes cannot remove
/// an ephemeral container); nothing else changes.
pub async fn verify_ephemeral(
    kube: &Kube,
    args: &VerifyArgs,
    source: &impl StreamSource,
    interrupt: impl Future<Output = ()>,
) -> Result<VerifyReport, Error> {
    let sink = args.advertise.unwrap_or(args.sink).to_string();
    let capture = Capture {
        pods: Selection::Targets(vec![Target::parse(&args.workload)?]),
        agent: SidecarOptions { image: args.image.clone(), ..SidecarOptions::with_collectors(&[&sink]) },
        pcapng: None,
        duration: args.timeout,
        count: None,
        capabilities: CapabilitiesArg::Auto,
        id: None,
        quiet: false,
    };
    // Nobody attaches to these captures to start them: they start at once.
    let plans: Vec<_> = capture::plan(kube, &capture)
        .await?
        .into_iter()
        .map(capture::Planned::without_stdin_control)
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut pods = Vec::new();
    for plan in &plans {
        let pod = pods_api.get(&plan.pod).await?;
        // A sidecar already sending to the sink has the same key and IP: its
        // packets would pass for the capture's.
        if pod_agent(&pod).is_some_and(|agent| sends_to(agent, &sink)) {
            return Err(Error::Usage(format!(
                "{sink} is already a collector of pod/{}'s sidecar; verify needs a sink of its own",
                plan.pod
            )));
        }
        let key = match capture::workload_of(&pod) {
            Some(w) => WorkloadKey::from_workload(&w.namespace, w.kind.as_str(), &w.name),
            None => WorkloadKey::from_workload(&kube.namespace, "Pod", &plan.pod),
        };
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        pods.push(CapturedPod { pod: plan.pod.clone(), ip, key: key.to_string() });
    }
    for plan in &plans {
        capture::add_container(kube, plan).await?;
        eprintln!(
            "pod/{}: added ephemeral container {} (ends after {:?})",
            plan.pod,
            plan.container_name(),
            args.timeout
        );
    }
    let wait = wait_for_pass(args.timeout, || async {
        Ok(evaluate_captures(&pods, &source.snapshot(), args.min_packets))
    });
    let Evaluation { outcome, pods: results } = tokio::select! {
        r = wait => r,
        _ = interrupt => return Err(Error::Interrupted("interrupted (the captures end by themselves at --timeout)".into())),
    };
    let workload = capture::workload_of(&pods_api.get(&plans[0].pod).await?)
        .map_or_else(|| args.workload.clone(), |w| format!("{}/{}", w.kind.lower(), w.name));
    Ok(VerifyReport {
        workload,
        namespace: kube.namespace.clone(),
        sink,
        outcome,
        pods: results,
        restored: true,
        ephemeral: true,
    })
}
