//! The values the dialog offers: contexts and namespaces from the user's
//! kubeconfig (read from disk only: Wireshark asks for the config when it
//! starts, which must not wait on a cluster), and on a reload the cluster's
//! namespaces and the chosen namespace's workloads.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;

use super::protocol::{Choice, Cluster, Opt};
use crate::Error;
use crate::kube_context::{Kube, KubeArgs};

/// The kubeconfig the options name, or $KUBECONFIG / ~/.kube/config.
fn kubeconfig(cluster: &Cluster) -> Result<Kubeconfig, Error> {
    let read = match &cluster.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    read.map_err(|e| {
        Error::Config(format!("no kubeconfig: {e}; set the bpc interface's kubeconfig option, or KUBECONFIG"))
    })
}

/// Contexts of the kubeconfig, the chosen (else current) one selected; and the
/// namespaces its contexts name, the chosen context's selected.
pub fn from_kubeconfig(cluster: &Cluster) -> (Vec<Choice>, Vec<Choice>) {
    let Ok(kc) = kubeconfig(cluster) else { return (Vec::new(), Vec::new()) };
    let current = cluster.context.clone().or(kc.current_context.clone());
    let mut contexts = Vec::new();
    let mut namespaces: Vec<Choice> = Vec::new();
    for named in &kc.contexts {
        let chosen = current.as_deref() == Some(named.name.as_str());
        let display = if kc.current_context.as_deref() == Some(&named.name) {
            format!("{} (current)", named.name)
        } else {
            named.name.clone()
        };
        contexts.push(Choice { value: named.name.clone(), display, default: chosen });
        let ns = named.context.as_ref().and_then(|c| c.namespace.clone()).unwrap_or_else(|| "default".into());
        match namespaces.iter_mut().find(|c| c.value == ns) {
            Some(c) => c.default |= chosen,
            None => namespaces.push(Choice { default: chosen, ..Choice::plain(ns) }),
        }
    }
    (contexts, namespaces)
}

/// The values of `opt` after a reload (the dialog's reload button).
pub async fn reload(opt: Opt, cluster: &Cluster) -> Result<Vec<Choice>, Error> {
    let (contexts, from_file) = from_kubeconfig(cluster);
    match opt {
        Opt::Context => Ok(contexts),
        Opt::Namespace => {
            let kube = connect(cluster).await?;
            let listed = Api::<Namespace>::all(kube.client.clone()).list(&ListParams::default()).await;
            // A user who may not list namespaces still has the kubeconfig's.
            let Ok(list) = listed else { return Ok(from_file) };
            Ok(list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .map(|name| Choice { default: name == kube.namespace, ..Choice::plain(name) })
                .collect())
        }
        Opt::Target => workloads(&connect(cluster).await?).await,
        _ => Ok(Vec::new()),
    }
}

/// The connection of the options (context, namespace, kubeconfig).
pub async fn connect(cluster: &Cluster) -> Result<Kube, Error> {
    KubeArgs {
        kubeconfig: cluster.kubeconfig.clone(),
        context: cluster.context.clone(),
        namespace: cluster.namespace.clone(),
        all_namespaces: false,
    }
    .connect()
    .await
}

/// The namespace's Deployments, StatefulSets and DaemonSets (with how many
/// pods are ready), then its Running pods that belong to none of them.
pub async fn workloads(kube: &Kube) -> Result<Vec<Choice>, Error> {
    let ns = &kube.namespace;
    let lp = ListParams::default();
    let forbidden = |e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 403 => Error::Usage(format!(
            "cannot list workloads in namespace {ns}: {}; type the target instead",
            s.message
        )),
        other => Error::Kube(other),
    };
    let mut out = Vec::new();
    let mut add = |short: &str, name: Option<String>, ready: Option<i32>| {
        if let Some(name) = name {
            let value = format!("{short}/{name}");
            out.push(Choice {
                display: format!("{value} ({} ready)", ready.unwrap_or(0)),
                value,
                default: false,
            });
        }
    };
    for d in Api::<Deployment>::namespaced(kube.client.clone(), ns).list(&lp).await.map_err(forbidden)?.items
    {
        add("deploy", d.metadata.name, d.status.and_then(|s| s.ready_replicas));
    }
    for s in Api::<StatefulSet>::namespaced(kube.client.clone(), ns).list(&lp).await.map_err(forbidden)?.items
    {
        add("sts", s.metadata.name, s.status.and_then(|s| s.ready_replicas));
    }
    for d in Api::<DaemonSet>::namespaced(kube.client.clone(), ns).list(&lp).await.map_err(forbidden)?.items {
        add("ds", d.metadata.name, d.status.map(|s| s.number_ready));
    }
    for p in Api::<Pod>::namespaced(kube.client.clone(), ns).list(&lp).await.map_err(forbidden)?.items {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let owned = p.metadata.owner_references.as_ref().is_some_and(|o| !o.is_empty());
        if running
            && !owned
            && let Some(name) = p.metadata.name
        {
            out.push(Choice::plain(format!("pod/{name}")));
        }
    }
    if let Some(first) = out.first_mut() {
        first.default = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_and_their_namespaces_come_from_the_kubeconfig_with_the_current_one_selected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters: []\nusers: []\ncontexts:\n\
             - name: prod\n  context: {cluster: c, namespace: shop}\n\
             - name: dev\n  context: {cluster: c}\n",
        )
        .unwrap();
        let cluster = Cluster { kubeconfig: Some(path), ..Cluster::default() };
        let (contexts, namespaces) = from_kubeconfig(&cluster);
        assert_eq!(
            contexts,
            [
                Choice { value: "prod".into(), display: "prod (current)".into(), default: true },
                Choice::plain("dev")
            ]
        );
        assert_eq!(namespaces, [Choice { default: true, ..Choice::plain("shop") }, Choice::plain("default")]);
        // Another context chosen in the dialog: its namespace is selected.
        let (_, namespaces) = from_kubeconfig(&Cluster { context: Some("dev".into()), ..cluster });
        assert_eq!(namespaces, [Choice::plain("shop"), Choice { default: true, ..Choice::plain("default") }]);
    }
}
