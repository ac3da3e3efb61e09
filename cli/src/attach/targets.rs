//! Which workloads attach and detach act on: the names checked before
//! anything is asked of the cluster, then read, or listed by selector.

use kube::api::{DynamicObject, ListParams};
use serde_json::Value;

use super::api_error;
use crate::Error;
use crate::kube_context::Kube;
use crate::sidecar;
use crate::workload::{KindApi, WorkloadId, WorkloadKind, WorkloadRef};

/// Checks the target arguments before anything is asked of the cluster.
pub fn check_targets(
    names: &[String],
    selector: Option<&str>,
    all: bool,
    all_namespaces: bool,
) -> Result<Vec<WorkloadRef>, Error> {
    let refs = names.iter().map(|n| WorkloadRef::parse(n)).collect::<Result<Vec<_>, _>>()?;
    if let Some(r) = refs.iter().find(|r| !r.kind_or_deployment().is_attachable()) {
        return Err(immutable_template(r));
    }
    if refs.is_empty() && selector.is_none() && !all {
        return Err(Error::Usage(
            "name at least one workload (NAME, deploy/NAME, sts/NAME, ds/NAME, cronjob/NAME) or use -l SELECTOR"
                .into(),
        ));
    }
    if !refs.is_empty() && (selector.is_some() || all) {
        return Err(Error::Usage("give workload names or a selector/--all, not both".into()));
    }
    if !refs.is_empty() && all_namespaces {
        return Err(Error::Usage("-A/--all-namespaces cannot be used with workload names: use -n NS".into()));
    }
    Ok(refs)
}

/// Why a Job or a Pod cannot be attached, and what to do instead.
fn immutable_template(r: &WorkloadRef) -> Error {
    let kind = r.kind_or_deployment();
    let instead = match kind {
        WorkloadKind::Job => format!(
            "capture its running pods now (kubectl bpc capture job/{0}), attach the CronJob that creates it \
             (kubectl bpc attach cronjob/NAME) so that every future Job carries the sidecar, or put the sidecar \
             into the Job's manifest before it is created (kubectl bpc inject -f job.yaml)",
            r.name
        ),
        _ => format!(
            "capture it now (kubectl bpc capture pod/{0}), attach the workload that creates it, or put the \
             sidecar into the Pod's manifest before it is created (kubectl bpc inject -f pod.yaml)",
            r.name
        ),
    };
    Error::Usage(format!(
        "{}/{}: a {}'s pod template cannot be changed once it is created, so the sidecar cannot be added or \
         removed there; {instead}",
        kind.resource(),
        r.name,
        kind.as_str()
    ))
}

/// Finds the workloads named, or matched by a selector, or (`all`) every
/// attached one. Names are read one by one (so a missing one is its own
/// failure); a selector or `all` lists each kind.
pub async fn resolve(
    kube: &Kube,
    names: &[String],
    selector: Option<&str>,
    all: bool,
) -> Result<Vec<Result<(WorkloadId, DynamicObject), Error>>, Error> {
    let refs = check_targets(names, selector, all, kube.all_namespaces)?;
    let mut found = Vec::new();
    for r in refs {
        let kind = r.kind_or_deployment();
        let id = WorkloadId { namespace: kube.namespace.clone(), kind, name: r.name };
        let got = kind.api(&kube.client, &id.namespace).get(&id.name).await;
        found.push(got.map(|o| (id.clone(), o)).map_err(|e| api_error(e, "get", &id)));
    }
    if selector.is_some() || all {
        let lp = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
        for kind in WorkloadKind::ATTACHABLE {
            let api = match kube.scope() {
                Some(ns) => kind.api(&kube.client, ns),
                None => kind.api_all(&kube.client),
            };
            let list = api.list(&lp).await.map_err(|e| match e {
                kube::Error::Api(s) if s.code == 403 => Error::Config(format!(
                    "cannot list {}s: {}; kubectl-bpc needs the RBAC verb 'list' on them",
                    kind.resource(),
                    s.message
                )),
                kube::Error::Api(s) if s.code == 400 => Error::Usage(format!(
                    "invalid selector '{}': {}",
                    selector.unwrap_or_default(),
                    s.message
                )),
                other => Error::Kube(other),
            })?;
            for o in list.items {
                if all
                    && selector.is_none()
                    && template(kind, &o).and_then(sidecar::status_annotation).is_none()
                {
                    continue;
                }
                let id = WorkloadId {
                    namespace: o.metadata.namespace.clone().unwrap_or_else(|| kube.namespace.clone()),
                    kind,
                    name: o.metadata.name.clone().unwrap_or_default(),
                };
                found.push(Ok((id, o)));
            }
        }
    }
    Ok(found)
}

pub(super) fn template(kind: WorkloadKind, o: &DynamicObject) -> Option<&Value> {
    o.data.pointer(kind.template_pointer())
}
