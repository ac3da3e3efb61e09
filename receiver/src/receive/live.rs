//! What a run shows while it runs: the live view's line (per key, and the
//! top path edges) and the [`Progress`] events the caller displays.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use crate::paths::{PathsReport, top_edges};
use crate::receiver::Report;

/// One line per second of the live view: per key (workload), its streams,
/// packets, loss, restarts and the packet rate since the previous line.
pub(super) fn live_line(r: &Report, last: &mut HashMap<String, u64>, since: Duration) -> String {
    if r.keys.is_empty() {
        return format!("waiting for GRE ({:.0}s)", r.elapsed_seconds);
    }
    let parts: Vec<String> = r
        .keys
        .iter()
        .map(|k| {
            let before = last.insert(k.key.clone(), k.packets).unwrap_or(0);
            let pps = (k.packets - before.min(k.packets)) as f64 / since.as_secs_f64().max(1e-3);
            format!(
                "{}: {} stream{} {} pkts {:.0} pps {} lost {} restarts",
                k.workload.as_deref().unwrap_or(&k.key),
                k.streams,
                if k.streams == 1 { "" } else { "s" },
                k.packets,
                pps,
                k.lost,
                k.restarts
            )
        })
        .collect();
    parts.join(" | ")
}

/// The live view's top three edges, after the per-key part.
pub(super) fn paths_suffix(p: &PathsReport) -> String {
    let top = top_edges(p, 3);
    if top.is_empty() { String::new() } else { format!(" || {}", top.join("; ")) }
}

/// What a receive run has to say while it runs; the caller shows it
/// (the binaries with [`StderrProgress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The live view, once a second unless `--quiet`: per key, packets and rate.
    Live(&'a str),
    /// Something the user should know that does not stop the run (a map
    /// that failed to reload, Graphviz missing, a paths file not written).
    Note(&'a str),
}

/// Shows [`Progress`] on stderr: the live view redrawn in place on a
/// terminal (indicatif), as plain periodic lines otherwise.
#[derive(Debug)]
pub struct StderrProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl StderrProgress {
    /// `quiet`: there is no live view to redraw (`--quiet`), notes only.
    pub fn new(quiet: bool) -> StderrProgress {
        let bar = (std::io::stderr().is_terminal() && !quiet).then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        StderrProgress { bar }
    }

    pub fn show(&mut self, progress: Progress<'_>) {
        match (progress, &self.bar) {
            (Progress::Live(line), Some(pb)) => pb.set_message(line.to_owned()),
            (Progress::Live(line), None) => eprintln!("{line}"),
            (Progress::Note(note), Some(pb)) => pb.println(note),
            (Progress::Note(note), None) => eprintln!("{note}"),
        }
    }
}

impl Drop for StderrProgress {
    fn drop(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::WorkloadMap;

    #[test]
    fn live_line_shows_each_key_with_its_rate_since_the_previous_line() {
        let key = |key: &str, workload: Option<&str>, packets| crate::receiver::KeyReport {
            key: key.into(),
            workload: workload.map(str::to_string),
            streams: 2,
            packets,
            restarts: 1,
            ..Default::default()
        };
        let mut r =
            Report { keys: vec![key("0x00000001", Some("shop/deployment/web"), 100)], ..Default::default() };
        let mut last = HashMap::new();
        let first = live_line(&r, &mut last, Duration::from_secs(1));
        assert_eq!(first, "shop/deployment/web: 2 streams 100 pkts 100 pps 0 lost 1 restarts");
        r.keys = vec![key("0x00000001", Some("shop/deployment/web"), 150), key("0x00000002", None, 10)];
        let second = live_line(&r, &mut last, Duration::from_secs(2));
        assert_eq!(
            second,
            "shop/deployment/web: 2 streams 150 pkts 25 pps 0 lost 1 restarts | \
             0x00000002: 2 streams 10 pkts 5 pps 0 lost 1 restarts"
        );
        assert!(live_line(&Report::default(), &mut last, Duration::from_secs(1)).starts_with("waiting"));
    }

    #[test]
    fn live_view_appends_the_top_edges_by_packets() {
        let edge = |client: &str, packets| crate::paths::PathEdge {
            client: client.into(),
            server: "shop/api".into(),
            service: Some("shop/api-svc".into()),
            protocol: "tcp".into(),
            port: 80,
            flows: 1,
            connections: 2,
            packets_to_server: packets,
            packets_to_client: 0,
            bytes_to_server: 0,
            bytes_to_client: 0,
            resets: 0,
            handshake_rtt_us: None,
            first_seen: 0.0,
            last_seen: 0.0,
            observed_by: vec![crate::paths::Observer::Client],
        };
        let mut p = crate::paths::FlowTable::default().report(
            &WorkloadMap::default(),
            &crate::paths::Capturing::default(),
            0.0,
        );
        assert_eq!(paths_suffix(&p), "");
        p.edges = vec![edge("shop/a", 1), edge("shop/b", 9), edge("shop/c", 5), edge("shop/d", 7)];
        assert_eq!(
            paths_suffix(&p),
            " || shop/b -> shop/api tcp/80 via shop/api-svc 2 conn; shop/d -> shop/api tcp/80 via shop/api-svc 2 conn; \
             shop/c -> shop/api tcp/80 via shop/api-svc 2 conn"
        );
    }
}
