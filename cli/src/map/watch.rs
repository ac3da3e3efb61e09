//! Reading the cluster: one list of each kind for `map`, watches for
//! `map --watch` and `sink --map-watch`.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::Error;

use super::*;

use crate::kube_context::scoped_api as apis;

/// Lists Nodes, or none when the user may not (a namespace-scoped role):
/// node rows are a help for labelling, not a reason to fail the map.
pub(super) async fn list_nodes(client: &Client) -> Result<Option<Vec<Node>>, Error> {
    let api: Api<Node> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
            tracing::debug!("no node rows: {}", s.message);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The Jobs in scope, for their CronJobs: None when the user may not list
/// them (their pods are then labelled with the Job).
pub(super) async fn list_jobs(client: &Client, namespace: Option<&str>) -> Result<Option<Vec<Job>>, Error> {
    match apis::<Job>(client, namespace).list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
            tracing::debug!("no Job owners: {}", s.message);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lists ReplicaSets, Jobs, pods, Services and Nodes (one call each) and builds the map.
/// `namespace` None means all namespaces.
pub async fn fetch_map(client: &Client, namespace: Option<&str>) -> Result<Vec<MapEntry>, Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let svc_api: Api<Service> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let mut owners = OwnerCache::from_replica_sets(&sets.items);
    for job in list_jobs(client, namespace).await?.unwrap_or_default() {
        owners.insert_job(&job);
    }
    let pods = pod_api.list(&ListParams::default()).await?;
    let services = svc_api.list(&ListParams::default()).await?;
    let nodes = list_nodes(client).await?.unwrap_or_default();
    Ok(build_full_map(&pods.items, &services.items, &nodes, &owners))
}

/// A secondary watch stream (Services, Nodes): it backs off and retries on
/// its own, and never stops the pod stream.
pub(super) fn side_watch<K>(
    api: Api<K>,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, watcher::Config::default()).default_backoff().boxed()
}

/// Watches pods (and ReplicaSets, to keep the owner cache fresh), Services
/// and Nodes (when the user may list them) and calls `emit` for each map
/// change. Returns when the pod watch stream ends.
pub async fn watch(
    client: &Client,
    namespace: Option<&str>,
    mut emit: impl FnMut(MapEvent) -> Result<(), Error>,
) -> Result<(), Error> {
    let rs_api: Api<ReplicaSet> = apis(client, namespace);
    let pod_api: Api<Pod> = apis(client, namespace);
    let svc_api: Api<Service> = apis(client, namespace);
    let sets = rs_api.list(&ListParams::default()).await?;
    let mut owners = OwnerCache::from_replica_sets(&sets.items);
    let jobs = list_jobs(client, namespace).await?;
    for job in jobs.iter().flatten() {
        owners.insert_job(job);
    }
    let mut state = MapState::default();
    let mut pods = watcher(pod_api, watcher::Config::default()).boxed();
    let mut rs_events = watcher(rs_api, watcher::Config::default()).boxed();
    // A CronJob makes its Jobs as it goes: keep them in the owner cache (when
    // the user may list them at all).
    let mut job_events = match jobs {
        Some(_) => watcher(apis::<Job>(client, namespace), watcher::Config::default()).boxed(),
        None => futures::stream::pending().boxed(),
    };
    let mut svc_events = side_watch(svc_api);
    let mut node_events = match list_nodes(client).await? {
        Some(_) => side_watch(Api::<Node>::all(client.clone())),
        None => futures::stream::pending().boxed(),
    };
    let (mut relist, mut svc_relist, mut node_relist) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let events = tokio::select! {
            ev = pods.try_next() => {
                let Some(ev) = ev.map_err(|e| Error::Usage(format!("pod watch failed: {e}")))? else {
                    return Ok(());
                };
                match ev {
                    watcher::Event::Init => { relist.clear(); Vec::new() }
                    watcher::Event::InitApply(p) => { relist.push(p); Vec::new() }
                    watcher::Event::InitDone => state.relist(&std::mem::take(&mut relist), &owners),
                    watcher::Event::Apply(p) => state.apply(&p, &owners),
                    watcher::Event::Delete(p) => state.delete(&p),
                }
            }
            ev = rs_events.next() => {
                // The ReplicaSet watch only refreshes the cache; its failures
                // are retried by the watcher and never stop the pod stream.
                if let Some(Ok(watcher::Event::Apply(rs) | watcher::Event::InitApply(rs))) = ev {
                    owners.insert(&rs);
                }
                Vec::new()
            }
            ev = job_events.next() => {
                if let Some(Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job))) = ev {
                    owners.insert_job(&job);
                }
                Vec::new()
            }
            Some(ev) = svc_events.next() => side_event(&mut state, &mut svc_relist, &SERVICE_ROWS, ev),
            Some(ev) = node_events.next() => side_event(&mut state, &mut node_relist, &NODE_ROWS, ev),
        };
        for e in events {
            emit(e)?;
        }
    }
}
