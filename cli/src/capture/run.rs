//! `kubectl bpc capture` from start to end: plan, add the containers, drive
//! every pod's stream into the output until the duration, Ctrl-C, SIGTERM
//! or the reader ends it, then report how each agent ended.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::{mpsc, watch};

use super::output::{self, Progress};
use super::state::{wait_ended, wait_running};
use super::stream::{Event, stream_pod};
use super::{Capture, ContainerState, Planned, add_container, plan};
use crate::kube_context::Kube;
use crate::merge::Demux;
use crate::{EXIT_WORKLOAD_FAILED, Error};

/// After its `--duration`, how long an agent has to end its stream before
/// the plugin stops it.
const END_GRACE: Duration = Duration::from_secs(15);
/// How long a stopped agent has to flush and end its stream.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The one stop of every agent, asked at most once.
struct Stop {
    tx: watch::Sender<bool>,
    since: Option<Instant>,
}

impl Stop {
    /// Asks every agent to stop (once).
    fn now(&mut self) {
        if self.since.is_none() {
            let _ = self.tx.send(true);
            self.since = Some(Instant::now());
        }
    }

    fn asked(&self) -> bool {
        self.since.is_some()
    }
}

/// `kubectl bpc capture`.
pub async fn run(capture: &Capture, kube: &Kube) -> Result<ExitCode, Error> {
    // SIGTERM (`kill`, and how Wireshark stops an extcap) stops the agents as
    // Ctrl-C does; registered now so that one sent while pods start is kept.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hosts_written = bpc_receiver::names::Written::default();
    let plans = plan(kube, capture).await?;
    let names: Vec<String> = plans.iter().map(|p| format!("{}/{}", p.namespace, p.pod)).collect();
    // The file is created only once the pre-flight passed.
    let mut merger = match &capture.pcapng {
        Some(path) => {
            let snaplen = capture.agent.snaplen.unwrap_or(bpc_contract::defaults::SNAPLEN);
            Some(output::create(path, &plans, snaplen, &mut hosts_written)?)
        }
        None => None,
    };
    // The namespace's other addresses (peers, Services, nodes) and their
    // changes while the capture runs, for the Name Resolution Blocks.
    let (hosts_tx, mut hosts_rx) = mpsc::unbounded_channel();
    let follow_hosts = merger.is_some().then(|| tokio::spawn(output::follow_hosts(kube.clone(), hosts_tx)));
    for p in &plans {
        add_container(kube, p).await?;
        if !capture.quiet {
            eprintln!("pod/{}: added ephemeral container {}", p.pod, p.container_name());
        }
    }
    let mut failures = Vec::new();
    let mut started = Vec::new();
    for p in &plans {
        match wait_running(kube, p).await {
            Ok(()) => started.push(p.clone()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop = Stop { tx: stop_tx, since: None };
    let index_of: BTreeMap<String, usize> =
        plans.iter().enumerate().map(|(i, p)| (p.pod.clone(), i)).collect();
    let mut live = vec![false; plans.len()];
    for p in &started {
        let i = index_of[&p.pod];
        live[i] = true;
        tokio::spawn(stream_pod(kube.clone(), p.clone(), i, tx.clone(), stop_rx.clone()));
    }
    drop(tx);
    for (i, live) in live.iter().enumerate() {
        if !live && let Some(m) = merger.as_mut() {
            m.finish(i);
        }
    }
    let mut progress = Progress::new(&names, capture.quiet);
    let mut demux: Vec<Demux> = plans.iter().map(|_| Demux::default()).collect();
    let mut ticker = tokio::time::interval(progress.interval());
    let begun = Instant::now();
    let limit = (!capture.duration.is_zero()).then(|| capture.duration + END_GRACE);
    let mut stream_errors = Vec::new();
    let mut open = live.iter().filter(|l| **l).count();
    while open > 0 {
        tokio::select! {
            ev = rx.recv() => match ev {
                None => break,
                Some(Event::Data(i, bytes)) => {
                    if let Some(m) = merger.as_mut() {
                        match demux[i].push(&bytes) {
                            Ok(items) => m.push(i, items),
                            Err(e) => stream_errors.push(format!("{}: {e}", names[i])),
                        }
                    }
                    if output::reader_gone(&mut merger)? {
                        stop.now();
                    }
                }
                Some(Event::End(i, why)) => {
                    open -= 1;
                    if let Some(why) = why {
                        stream_errors.push(format!("{}: {why}", names[i]));
                    }
                    if demux[i].pending() > 0 {
                        stream_errors.push(format!(
                            "{}: the stream ended inside a block ({} bytes dropped)", names[i], demux[i].pending()
                        ));
                    }
                    if let Some(m) = merger.as_mut() {
                        m.finish(i);
                    }
                    if output::reader_gone(&mut merger)? {
                        stop.now();
                    }
                    progress.ended(i);
                }
            },
            _ = tokio::signal::ctrl_c(), if !stop.asked() => {
                if !capture.quiet {
                    eprintln!("stopping: the agents flush what they have");
                }
                stop.now();
            }
            _ = terminate.recv(), if !stop.asked() => stop.now(),
            Some(entry) = hosts_rx.recv() => {
                if let Some(m) = merger.as_mut() {
                    let fresh = hosts_written.fresh(bpc_receiver::names::host_of(&entry));
                    if let Err(e) = m.names(&fresh) && !e.is_closed_pipe() {
                        return Err(e);
                    }
                }
            }
            _ = ticker.tick() => {
                if limit.is_some_and(|l| begun.elapsed() > l) {
                    stop.now();
                }
                if stop.since.is_some_and(|s| s.elapsed() > STOP_GRACE) {
                    stream_errors.push("the agents did not end their streams in time".into());
                    break;
                }
                if let Some(m) = merger.as_ref() {
                    progress.show(m, &names);
                }
            }
        }
    }
    let _ = stop.tx.send(true);
    if let Some(task) = follow_hosts {
        task.abort();
    }
    if let Some(m) = merger.take() {
        output::finish(m, &names, capture.quiet)?;
    }
    failures.extend(how_agents_ended(kube, &started, capture.quiet).await);
    if capture.quiet && !(failures.is_empty() && stream_errors.is_empty()) {
        let all: Vec<&str> = stream_errors.iter().chain(&failures).map(String::as_str).collect();
        return Err(Error::Workload(all.join("; ")));
    }
    for e in stream_errors.iter().chain(&failures) {
        eprintln!("error: {e}");
    }
    if failures.is_empty() && stream_errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_WORKLOAD_FAILED))
    }
}

/// What each agent said at the end (its final tally, unless quiet), and the
/// failure of each that did not exit 0.
async fn how_agents_ended(kube: &Kube, started: &[Planned], quiet: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    for p in started {
        let name = p.container_name();
        let lp = LogParams { container: Some(name.to_owned()), tail_lines: Some(1), ..Default::default() };
        if let Ok(log) = pods.logs(&p.pod, &lp).await
            && log.contains(bpc_contract::defaults::FINAL_TALLY_PREFIX)
            && !quiet
        {
            eprintln!("pod/{} {name}: {}", p.pod, log.trim());
        }
        match wait_ended(&pods, p).await {
            ContainerState::Terminated { exit_code: 0, .. } => {}
            ContainerState::Terminated { exit_code, message, .. } => failures.push(format!(
                "pod/{}: {name} exited {exit_code}: {}",
                p.pod,
                message.unwrap_or_default().trim()
            )),
            other if !quiet => eprintln!("note: pod/{}: {name} has not ended yet ({other:?})", p.pod),
            _ => {}
        }
    }
    failures
}
