//! The `bpc-sim receive` command: options, the run loop (live view, map
//! file, path files), and the report it ends with. Also run in-process by
//! `kubectl bpc sink`, so it touches no process state: the caller passes the
//! stop signal in (its Ctrl-C) and prints the [`Received`] it gets back.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::expectation::Expectation;
use crate::map::{SharedMap, WorkloadMap};
use crate::paths::{PathsReport, render_dot, top_edges};
use crate::pcap_out::PcapOut;
use crate::receiver::{FrameSink, Receiver, ReceiverConfig, Report, VxlanListen};

/// Options of `bpc-sim receive` (flattened into `kubectl bpc sink`).
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiveArgs {
    /// Address to listen on (IPv4 or IPv6).
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// UDP port VXLAN arrives on (0: none) [default: 4789 when free, else GRE and ERSPAN only].
    #[arg(long, value_name = "PORT")]
    pub vxlan_port: Option<u16>,
    /// Write inner frames to this file: pcap, or pcapng (one interface per key) when it ends in .pcapng.
    #[arg(long)]
    pub write: Option<String>,
    /// Rotate the pcap file after N megabytes (FILE.1, FILE.2, ...).
    #[arg(long)]
    pub rotate_mb: Option<u64>,
    /// `kubectl bpc map -o json` output, for workload names; re-read when the file changes.
    #[arg(long)]
    pub map: Option<String>,
    /// Discover service paths: write PREFIX.json, PREFIX.dot and (with Graphviz) PREFIX.svg/.png.
    #[arg(long, value_name = "PREFIX")]
    pub paths: Option<String>,
    /// Rewrite the --paths files every SECS seconds during the run (and once at the end).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub paths_interval: f64,
    /// Stop after S seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after N valid packets.
    #[arg(long)]
    pub count: Option<u64>,
    /// Report format: text or json.
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub output: String,
    /// No live view.
    #[arg(long)]
    pub quiet: bool,
    /// Assertion 'SELECTOR [source=IP] CHECK...' (repeatable), e.g. 'workload=shop/web packets>=100
    /// loss=0 restarts>=1'. Selector key=K, workload=NS/NAME, workload=NS/KIND/NAME or a --map name;
    /// checks FIELD(=|>=|<=|>|<)N over packets bytes loss reorder dup streams seq_restarts
    /// restarted_streams restarts.
    #[arg(long)]
    pub expect: Vec<String>,
}

/// Columns of the per-stream table: heading and width (negative: left-aligned).
const STREAM_COLUMNS: &[(&str, isize)] = &[
    ("KEY", -12),
    ("WORKLOAD", -32),
    ("SOURCE", -16),
    ("PROFILE", -9),
    ("PACKETS", 10),
    ("BYTES", 12),
    ("LOST", 6),
    ("REORDER", 7),
    ("DUP", 5),
    ("RESTARTS", 8),
    ("PPS", 10),
];

/// Columns of the per-key table.
const KEY_COLUMNS: &[(&str, isize)] = &[
    ("KEY", -12),
    ("WORKLOAD", -32),
    ("STREAMS", 7),
    ("PACKETS", 10),
    ("BYTES", 12),
    ("LOST", 6),
    ("RESTARTS", 8),
    ("SEQ_RESTARTS", 12),
    ("RESTARTED_STREAMS", 17),
];

/// One table line: each cell padded to its column, one space between.
fn table_line(columns: &[(&str, isize)], cells: &[String]) -> String {
    debug_assert_eq!(columns.len(), cells.len());
    let mut line: Vec<String> = Vec::with_capacity(cells.len());
    for ((_, width), cell) in columns.iter().zip(cells) {
        let w = width.unsigned_abs();
        line.push(if *width < 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") });
    }
    line.join(" ") + "\n"
}

fn table_header(columns: &[(&str, isize)]) -> String {
    let headings: Vec<String> = columns.iter().map(|(heading, _)| heading.to_string()).collect();
    table_line(columns, &headings)
}

/// The first cells of a row: the key and its workload, `-` when unmapped.
fn key_cells(key: &str, workload: &Option<String>) -> Vec<String> {
    vec![key.to_string(), workload.as_deref().unwrap_or("-").to_string()]
}

/// Renders the report as a text table.
pub fn render_text(r: &Report) -> String {
    let mut s = table_header(STREAM_COLUMNS);
    for st in &r.streams {
        let mut cells = key_cells(&st.key, &st.workload);
        cells.extend([st.source.to_string(), st.profile.to_string()]);
        cells.extend(
            [st.packets, st.bytes, st.lost, st.reordered, st.duplicated, st.restarts].map(|n| n.to_string()),
        );
        cells.push(format!("{:.0}", st.rate_pps));
        s += &table_line(STREAM_COLUMNS, &cells);
        if let Some(d) = st.directions {
            s += &format!(
                "    directions: inbound {} outbound {} unknown {}\n",
                d.inbound, d.outbound, d.unknown
            );
        }
    }
    if !r.keys.is_empty() {
        s += "\n";
        s += &table_header(KEY_COLUMNS);
        for k in &r.keys {
            let counts =
                [k.streams, k.packets, k.bytes, k.lost, k.restarts, k.sequence_restarts, k.restarted_streams];
            let mut cells = key_cells(&k.key, &k.workload);
            cells.extend(counts.map(|n| n.to_string()));
            s += &table_line(KEY_COLUMNS, &cells);
        }
    }
    s += &format!(
        "total: {} packets, {} bytes, {} lost, {} malformed in {:.1}s\n",
        r.totals.packets, r.totals.bytes, r.totals.lost, r.totals.malformed, r.elapsed_seconds
    );
    for (k, v) in &r.malformed {
        s += &format!("malformed {k}: {v}\n");
    }
    if !r.top_flows.is_empty() {
        s += "top flows:\n";
        for f in &r.top_flows {
            s += &format!(
                "  {} {} -> {}  {} packets {} bytes\n",
                f.protocol, f.source, f.destination, f.packets, f.bytes
            );
        }
    }
    if let Some(l) = &r.latency {
        s += &format!(
            "latency: {} samples p50 {:.1}us p99 {:.1}us max {:.1}us\n",
            l.samples, l.p50_us, l.p99_us, l.max_us
        );
    }
    for n in &r.notes {
        s += &format!("note: {n}\n");
    }
    s
}

/// One line per second of the live view: per key (workload), its streams,
/// packets, loss, restarts and the packet rate since the previous line.
fn live_line(r: &Report, last: &mut HashMap<String, u64>, since: Duration) -> String {
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
fn paths_suffix(p: &PathsReport) -> String {
    let top = top_edges(p, 3);
    if top.is_empty() { String::new() } else { format!(" || {}", top.join("; ")) }
}

/// Runs `bpc-sim receive` until `stop` is set, `--duration` or `--count`.
pub fn run_receive(
    args: &ReceiveArgs,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Received, Error> {
    run_receive_with(args, None, stop, progress)
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

/// How a receive run ended: its report, the `--expect` assertions that
/// failed, what to tell the user on stderr, and a `--write` failure if one
/// ended the run early.
#[derive(Debug)]
pub struct Received {
    /// The final report.
    pub report: Report,
    /// Each failed expectation, explained.
    pub failures: Vec<String>,
    /// Lines for stderr (which path files were written).
    pub notes: Vec<String>,
    /// The pcap output failed (the run stopped there).
    pub write_error: Option<Error>,
    json: bool,
}

impl Received {
    /// The report as `-o` asked: a text table or JSON.
    pub fn render(&self) -> String {
        if self.json {
            serde_json::to_string_pretty(&self.report).expect("report serialises") + "\n"
        } else {
            render_text(&self.report)
        }
    }

    /// Prints the report to `out` and notes and failures to `err`: exit 0
    /// when every expectation holds, 1 otherwise; a `--write` failure is the
    /// error. A closed `out` (`| head`) ends the report quietly.
    pub fn print(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, Error> {
        let stderr = |source| Error::File { path: "stderr".into(), source };
        for n in &self.notes {
            writeln!(err, "{n}").map_err(stderr)?;
        }
        match out.write_all(self.render().as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Error::File { path: "stdout".into(), source: e });
            }
            _ => {}
        }
        for f in &self.failures {
            writeln!(err, "expectation failed: {f}").map_err(stderr)?;
        }
        match self.write_error {
            Some(e) => Err(e),
            None => Ok(if self.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }),
        }
    }
}

/// Follows a `--map` file: re-reads it when its modification time or size
/// changes. A file caught half-written fails to parse and is retried on the
/// next change or poll, keeping the previous map.
struct MapFile {
    path: String,
    seen: Option<(SystemTime, u64)>,
    failed: bool,
}

impl MapFile {
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Reloads into `map` when changed: `Ok(true)` when it did; `Err` with
    /// what to tell the user when a new version cannot be read (once per
    /// version: the same broken file again is `Ok(false)`).
    fn poll(&mut self, map: &SharedMap) -> Result<bool, String> {
        let stamp = self.stamp();
        if stamp.is_none() || (stamp == self.seen && !self.failed) {
            return Ok(false);
        }
        match WorkloadMap::load(&self.path) {
            Ok(newer) => {
                map.write().unwrap().update(newer);
                self.seen = stamp;
                self.failed = false;
                Ok(true)
            }
            Err(e) => {
                let new_failure = !self.failed || stamp != self.seen;
                self.seen = stamp;
                self.failed = true;
                if new_failure { Err(format!("bpc-sim: keeping the previous map: {e}")) } else { Ok(false) }
            }
        }
    }
}

/// Writes PREFIX.json and PREFIX.dot (each via a temporary file and a
/// rename, so a reader never sees half a file), then PREFIX.svg and
/// PREFIX.png with Graphviz's `dot` when it is installed. Returns whether
/// the pictures were drawn.
pub fn write_paths(prefix: &str, report: &PathsReport) -> Result<bool, Error> {
    let put = |ext: &str, text: &str| -> Result<(), Error> {
        let path = format!("{prefix}.{ext}");
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, text).map_err(|source| Error::File { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::File { path, source })
    };
    put("json", &(serde_json::to_string_pretty(report).expect("paths serialise") + "\n"))?;
    put("dot", &render_dot(report))?;
    let mut drawn = true;
    for fmt in ["svg", "png"] {
        let out = format!("{prefix}.{fmt}");
        let tmp = format!("{prefix}.tmp.{fmt}");
        let ok = std::process::Command::new("dot")
            .arg(format!("-T{fmt}"))
            .arg(format!("{prefix}.dot"))
            .arg("-o")
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            std::fs::rename(&tmp, &out).map_err(|source| Error::File { path: out, source })?;
        } else {
            let _ = std::fs::remove_file(&tmp);
            drawn = false;
        }
    }
    Ok(drawn)
}

/// [`run_receive`] with a map kept fresh by the caller (`kubectl bpc sink
/// --map-watch`); `--map` still seeds and follows its file when given.
pub fn run_receive_with(
    args: &ReceiveArgs,
    shared: Option<SharedMap>,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Received, Error> {
    if args.output != "text" && args.output != "json" {
        return Err(Error::Invalid { what: "-o", message: format!("{} (use text or json)", args.output) });
    }
    if !(args.paths_interval > 0.0 && args.paths_interval.is_finite()) {
        return Err(Error::Invalid {
            what: "--paths-interval",
            message: format!("{} (seconds > 0)", args.paths_interval),
        });
    }
    let shared = shared.unwrap_or_default();
    let mut map_file = args.map.as_ref().map(|p| MapFile { path: p.clone(), seen: None, failed: false });
    if let Some(f) = &mut map_file {
        // The first read must succeed: a wrong path is a usage error, not a wait.
        let first = WorkloadMap::load(&f.path)?;
        f.seen = f.stamp();
        shared.write().unwrap().update(first);
    }
    let expectations = {
        let map = shared.read().unwrap();
        args.expect.iter().map(|e| Expectation::parse(e, &map)).collect::<Result<Vec<_>, _>>()?
    };
    let pcap = match &args.write {
        Some(p) => Some(Arc::new(Mutex::new(PcapOut::create(p, args.rotate_mb, shared.clone())?))),
        None => None,
    };
    let frame_sink = pcap.clone().map(|p| p as Arc<Mutex<dyn FrameSink>>);
    let vxlan = match args.vxlan_port {
        None => VxlanListen::Try(bpc_wire::vxlan::PORT),
        Some(0) => VxlanListen::Off,
        Some(port) => VxlanListen::Require(port),
    };
    let config = ReceiverConfig {
        listen: args.listen,
        map: shared.clone(),
        paths: args.paths.is_some(),
        frame_sink: frame_sink.clone(),
    };
    let receiver = Receiver::start_with(config, vxlan)?;
    let paths_every = Duration::from_secs_f64(args.paths_interval);
    let mut last_paths = Instant::now();
    let mut last_map_poll = Instant::now();
    let mut graphviz_noted = false;
    // What writing the paths files has to say, if anything.
    let mut write_paths_now = |report: &PathsReport| -> Option<String> {
        let prefix = args.paths.as_ref()?;
        match write_paths(prefix, report) {
            Ok(true) => None,
            Ok(false) if !graphviz_noted => {
                graphviz_noted = true;
                Some(format!(
                    "note: Graphviz `dot` not found or failed: {prefix}.svg/.png not drawn (apt-get install graphviz)"
                ))
            }
            Ok(false) => None,
            Err(e) => Some(format!("bpc-sim: {e}")),
        }
    };
    let start = Instant::now();
    let mut last_print = Instant::now();
    let mut last_packets = HashMap::new();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if stop.load(Ordering::Relaxed) || receiver.sink_failed() {
            break;
        }
        if args.duration.is_some_and(|d| start.elapsed().as_secs_f64() >= d) {
            break;
        }
        if let Some(c) = args.count
            && receiver.packets() >= c
        {
            break;
        }
        if let Some(f) = &mut map_file
            && last_map_poll.elapsed() >= Duration::from_millis(500)
        {
            last_map_poll = Instant::now();
            if let Err(note) = f.poll(&shared) {
                progress(Progress::Note(&note));
            }
        }
        if args.paths.is_some() && last_paths.elapsed() >= paths_every {
            last_paths = Instant::now();
            if let Some(note) = write_paths_now(&receiver.paths()) {
                progress(Progress::Note(&note));
            }
        }
        if !args.quiet && last_print.elapsed() >= Duration::from_secs(1) {
            let mut line = live_line(&receiver.snapshot(), &mut last_packets, last_print.elapsed());
            if args.paths.is_some() {
                line += &paths_suffix(&receiver.paths());
            }
            last_print = Instant::now();
            progress(Progress::Live(&line));
        }
    }
    if let Some(Err(note)) = map_file.as_mut().map(|f| f.poll(&shared)) {
        progress(Progress::Note(&note));
    }
    let paths = args.paths.as_ref().map(|_| receiver.paths());
    let mut write_error = receiver.take_sink_error();
    let report = receiver.stop();
    drop(frame_sink);
    if let Some(p) = pcap {
        let closed = p.lock().unwrap().finish();
        write_error = write_error.or(closed.err());
    }
    let mut notes = Vec::new();
    if let (Some(prefix), Some(p)) = (&args.paths, &paths) {
        if let Some(note) = write_paths_now(p) {
            progress(Progress::Note(&note));
        }
        notes.push(format!(
            "paths: {} edges, {} nodes written to {prefix}.json and {prefix}.dot",
            p.edges.len(),
            p.nodes.len()
        ));
    }
    let failures = expectations.iter().filter_map(|e| e.check(&report)).collect();
    Ok(Received { report, failures, notes, write_error, json: args.output == "json" })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn pod_row(ip: &str, workload: &str) -> String {
        format!(
            r#"[{{"type":"pod","ip":"{ip}","namespace":"shop","kind":"Deployment","workload":"{workload}","key":"7"}}]"#
        )
    }

    #[test]
    fn text_report_lines_up_every_cell_under_its_heading() {
        use crate::receiver::{DirectionCounts, KeyReport, StreamReport};
        // Through the JSON schema: [packets, bytes, lost, reordered, duplicated, restarts].
        let stream = |key: &str, workload: Option<&str>, source: &str, profile: &str, counts: [u64; 6]| {
            let [packets, bytes, lost, reordered, duplicated, restarts] = counts;
            serde_json::from_value::<StreamReport>(serde_json::json!({
                "key": key, "workload": workload, "source": source, "profile": profile,
                "packets": packets, "bytes": bytes, "lost": lost, "reordered": reordered,
                "duplicated": duplicated, "restarts": restarts, "first_seen": 0.0, "last_seen": 0.0,
                "rate_pps": 0.0, "directions": null,
            }))
            .unwrap()
        };
        let checkout = Some("shop/deployment/checkout");
        let r = Report {
            streams: vec![
                StreamReport {
                    rate_pps: 99.6,
                    ..stream("0x00000005", checkout, "198.18.1.2", "standard", [1200, 345678, 2, 1, 0, 1])
                },
                StreamReport {
                    directions: Some(DirectionCounts { inbound: 3, outbound: 4, unknown: 0 }),
                    ..stream("0x00000006", None, "198.18.1.3", "netis", [7, 420, 0, 0, 0, 0])
                },
            ],
            keys: vec![KeyReport {
                key: "0x00000005".into(),
                workload: checkout.map(str::to_string),
                streams: 2,
                packets: 1200,
                bytes: 345678,
                lost: 2,
                restarts: 1,
                sequence_restarts: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render_text(&r);
        let tables: Vec<&str> = text.lines().take_while(|l| !l.starts_with("total:")).collect();
        assert_eq!(
            tables,
            [
                "KEY          WORKLOAD                         SOURCE           PROFILE      PACKETS        BYTES   LOST REORDER   DUP RESTARTS        PPS",
                "0x00000005   shop/deployment/checkout         198.18.1.2       standard        1200       345678      2       1     0        1        100",
                "0x00000006   -                                198.18.1.3       netis              7          420      0       0     0        0          0",
                "    directions: inbound 3 outbound 4 unknown 0",
                "",
                "KEY          WORKLOAD                         STREAMS    PACKETS        BYTES   LOST RESTARTS SEQ_RESTARTS RESTARTED_STREAMS",
                "0x00000005   shop/deployment/checkout               2       1200       345678      2        1            1                 0",
            ]
        );
    }

    #[test]
    fn map_file_is_re_read_when_it_changes_and_a_broken_one_keeps_the_previous_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.json");
        std::fs::write(&path, pod_row("198.18.1.2", "api")).unwrap();
        let shared = SharedMap::default();
        let mut f = MapFile { path: path.to_str().unwrap().into(), seen: None, failed: false };
        assert_eq!(f.poll(&shared), Ok(true));
        assert_eq!(f.poll(&shared), Ok(false), "unchanged file: no reload");
        let peer = |ip: &str| shared.read().unwrap().peer(&ip.parse().unwrap()).map(|p| p.name.clone());
        assert_eq!(peer("198.18.1.2").as_deref(), Some("api"));
        // A new pod IP (longer file: the size changes even within one mtime tick).
        std::fs::write(&path, pod_row("198.18.1.33", "api-new")).unwrap();
        assert_eq!(f.poll(&shared), Ok(true));
        assert_eq!(peer("198.18.1.33").as_deref(), Some("api-new"));
        assert_eq!(peer("198.18.1.2").as_deref(), Some("api"), "the replaced pod keeps its label");
        std::fs::write(&path, "[{\"type\": ").unwrap();
        assert!(f.poll(&shared).is_err_and(|note| note.contains("keeping the previous map")));
        assert_eq!(f.poll(&shared), Ok(false), "the same broken file is told once");
        assert_eq!(peer("198.18.1.33").as_deref(), Some("api-new"));
        std::fs::write(&path, pod_row("198.18.1.44", "db")).unwrap();
        assert_eq!(f.poll(&shared), Ok(true), "a fixed file is read again");
        assert_eq!(peer("198.18.1.44").as_deref(), Some("db"));
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

    #[test]
    fn path_files_are_written_as_json_dot_svg_and_png_with_no_temporary_left() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        let prefix = prefix.to_str().unwrap();
        let report = crate::paths::FlowTable::default().report(
            &WorkloadMap::default(),
            &crate::paths::Capturing::default(),
            1.0,
        );
        let drawn = write_paths(prefix, &report).unwrap();
        let json: PathsReport =
            serde_json::from_str(&std::fs::read_to_string(format!("{prefix}.json")).unwrap()).unwrap();
        assert_eq!(json, report);
        assert!(std::fs::read_to_string(format!("{prefix}.dot")).unwrap().starts_with("digraph paths {"));
        let has_dot = std::process::Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(
            has_dot,
            "Graphviz's dot is needed for this test (scripts/install-deps.sh installs graphviz)"
        );
        assert!(drawn);
        let svg = std::fs::read_to_string(format!("{prefix}.svg")).unwrap();
        assert!(svg.contains("<svg"), "not an SVG: {svg:.80}");
        let png = std::fs::read(format!("{prefix}.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(8)]);
        for leftover in ["json.tmp", "dot.tmp", "tmp.svg", "tmp.png"] {
            assert!(
                !std::path::Path::new(&format!("{prefix}.{leftover}")).exists(),
                "{leftover} left behind"
            );
        }
    }
}
