//! What a capture shows and writes: the merged pcapng (one interface per
//! pod, the namespace's names in Name Resolution Blocks) and each pod's live
//! line on stderr.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Planned;
use crate::Error;
use crate::kube_context::Kube;
use crate::map::{MapEntry, MapEventKind};
use crate::merge::{Merger, PodInterface, Totals};

/// The merged pcapng of every pod's stream.
pub(super) type PcapngOut = Merger<Box<dyn Write + Send>>;

/// Creates the pcapng output (`-`: standard output) with one interface per
/// pod and the pods' own names.
pub(super) fn create(
    path: &Path,
    plans: &[Planned],
    snaplen: u32,
    hosts_written: &mut bpc_receiver::names::Written,
) -> Result<PcapngOut, Error> {
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::File::create(path)
                .map_err(|e| Error::Usage(format!("cannot create {}: {e}", path.display())))?,
        )
    };
    let mut merger = Merger::with_interfaces(out, &interfaces(plans), snaplen)?;
    merger.names(&hosts_written.fresh(plans.iter().flat_map(|p| p.hosts.clone())))?;
    Ok(merger)
}

/// Each pod's interface: `NAMESPACE/POD`, described by its workload.
pub fn interfaces(plans: &[Planned]) -> Vec<PodInterface> {
    plans
        .iter()
        .map(|p| PodInterface {
            name: format!("{}/{}", p.namespace, p.pod),
            description: Some(match &p.workload {
                Some(w) => format!("workload {}", w.path()),
                None => "pod without a known workload".to_owned(),
            }),
        })
        .collect()
}

/// Drains the merger; true when its reader went away (Wireshark stopped, a
/// closed pipe): the output is dropped and the capture should stop.
pub(super) fn reader_gone<W: Write>(merger: &mut Option<Merger<W>>) -> Result<bool, Error> {
    match merger.as_mut().map(Merger::drain) {
        Some(Err(e)) if e.is_closed_pipe() => {
            *merger = None;
            Ok(true)
        }
        Some(Err(e)) => Err(e),
        _ => Ok(false),
    }
}

/// Ends every pod's stream in the merger, writes what is left, and prints
/// each pod's totals (unless quiet). A reader gone by now is no failure.
pub(super) fn finish(mut merger: PcapngOut, names: &[String], quiet: bool) -> Result<(), Error> {
    for i in 0..names.len() {
        merger.finish(i);
    }
    let totals: Vec<_> = (0..names.len()).map(|i| merger.totals(i)).collect();
    match merger.drain().and_then(|_| Ok(merger.into_inner().flush()?)) {
        Err(e) if e.is_closed_pipe() => {}
        other => other?,
    }
    for (name, t) in names.iter().zip(totals) {
        if !quiet {
            eprintln!("{}", live_line(name, t, 0.0).replace(", 0 pkt/s", ""));
        }
    }
    Ok(())
}

/// Sends the map rows of the namespace (pods, Services, nodes), and each
/// change, while the capture runs. Best effort: a user who may not watch
/// them still gets the captured pods' own names, written at the start.
pub(super) async fn follow_hosts(kube: Kube, tx: mpsc::UnboundedSender<MapEntry>) {
    let result = crate::map::watch(&kube.client, Some(&kube.namespace), |ev| {
        if ev.event != MapEventKind::Delete {
            let _ = tx.send(ev.entry);
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::debug!("no names beyond the captured pods: {e}");
    }
}

/// The live line of one pod.
fn live_line(name: &str, t: Totals, rate: f64) -> String {
    format!("{name}: {} packets, {} bytes, {rate:.0} pkt/s, {} dropped", t.packets, t.bytes, t.drops)
}

/// The pods' live lines: spinners on a terminal, a line every few seconds
/// otherwise (none when quiet).
pub(super) struct Progress {
    tty: bool,
    quiet: bool,
    // Kept for the bars' lifetime: it draws them.
    _bars: indicatif::MultiProgress,
    bar: Vec<indicatif::ProgressBar>,
    last: Vec<(Instant, u64)>,
}

impl Progress {
    /// One line per pod, each "starting".
    pub(super) fn new(names: &[String], quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bars = indicatif::MultiProgress::with_draw_target(if tty {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        });
        let bar = names
            .iter()
            .map(|n| {
                let b = bars.add(indicatif::ProgressBar::new_spinner());
                b.set_message(format!("{n}: starting"));
                b
            })
            .collect();
        Progress { tty, quiet, _bars: bars, bar, last: vec![(Instant::now(), 0); names.len()] }
    }

    /// How often [`Progress::show`] is called.
    pub(super) fn interval(&self) -> Duration {
        Duration::from_secs(if self.tty { 1 } else { 5 })
    }

    /// Each pod's counts and rate since the last call.
    pub(super) fn show<W: Write>(&mut self, merger: &Merger<W>, names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            let t = merger.totals(i);
            let (at, packets) = self.last[i];
            let rate = (t.packets - packets) as f64 / at.elapsed().as_secs_f64().max(0.001);
            self.last[i] = (Instant::now(), t.packets);
            let line = live_line(name, t, rate);
            if self.tty {
                self.bar[i].set_message(line);
                self.bar[i].tick();
            } else if !self.quiet {
                eprintln!("{line}");
            }
        }
    }

    /// Pod `i`'s stream ended.
    pub(super) fn ended(&self, i: usize) {
        let bar = &self.bar[i];
        bar.finish_with_message(format!("{} (ended)", bar.message()));
    }
}
