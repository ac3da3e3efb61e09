//! `verify WORKLOAD`: the sidecar as attached streams to a temporary sink.

use std::future::Future;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::Error;

use super::*;

/// Runs the verification against a receiver; `interrupt` completing (e.g.
/// Ctrl-C) aborts it. The original collectors are restored in every case
/// once the sink patch was applied.
pub async fn verify(
    client: &Client,
    namespace: &str,
    args: &VerifyArgs,
    source: &impl StreamSource,
    interrupt: impl Future<Output = ()>,
) -> Result<VerifyReport, Error> {
    let target = read_target(client, namespace, &args.workload).await?;
    let sink = args.advertise.unwrap_or(args.sink).to_string();
    let collectors = with_sink(&target.collectors, &sink)?;
    let annotation = target.status_annotation.as_deref().map(|a| annotation_with_collectors(a, &collectors));
    patch(client, &target, &collector_patch(&target, &collectors, annotation.as_deref(), Some(&sink)))
        .await?;

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&target.selector);
    let wait = wait_for_pass(args.timeout, || async {
        match pods_api.list(&lp).await {
            Ok(pods) => Ok(evaluate(&target, &pods.items, &source.snapshot(), &sink, args.min_packets)),
            // A transient API error is a reason to look again, not to give up.
            Err(e) => Err(format!("cannot list pods: {e}")),
        }
    });
    let outcome = tokio::select! {
        r = wait => Ok(r),
        _ = interrupt => Err(Error::Interrupted("interrupted".into())),
    };

    let restore = collector_patch(&target, &target.collectors, target.status_annotation.as_deref(), None);
    let restored = patch(client, &target, &restore).await;
    if let Err(e) = restored {
        // The workload is left sending to a sink that is gone: a workload
        // failure with the command that mends it, whatever the outcome was.
        return Err(Error::Workload(format!(
            "could not restore the original collectors ({e}); restore them with: kubectl patch {}/{} -n {} \
             --type strategic -p '{}'",
            target.kind.lower(),
            target.name,
            target.namespace,
            restore
        )));
    }
    let Evaluation { outcome, pods } = outcome?;
    Ok(VerifyReport {
        workload: format!("{}/{}", target.kind.lower(), target.name),
        namespace: target.namespace,
        sink,
        outcome,
        pods,
        restored: true,
        ephemeral: false,
    })
}
