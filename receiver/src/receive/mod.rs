//! A receive run (`bpc-sim receive`, and `kubectl bpc sink` in-process):
//! options, the run loop (live view, map file, path files), and the report
//! it ends with. It touches no process state: the caller passes the stop
//! signal in (its Ctrl-C) and prints the [`Received`] it gets back.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;
use crate::expectation::Expectation;
use crate::map::SharedMap;
use crate::paths::PathsReport;
use crate::pcap_out::PcapOut;
use crate::receiver::{FrameSink, Receiver, ReceiverConfig, Report, VxlanListen};

mod live;
mod map_file;
mod path_files;
mod text;

pub use live::{Progress, StderrProgress};
use live::{live_line, paths_suffix};
use map_file::MapFile;
pub use path_files::write_paths;
pub use text::render_text;

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

/// Runs `bpc-sim receive` until `stop` is set, `--duration` or `--count`.
pub fn run_receive(
    args: &ReceiveArgs,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Received, Error> {
    run_receive_with(args, None, stop, progress)
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
    let mut map_file = args.map.as_deref().map(|p| MapFile::open(p, &shared)).transpose()?;
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
