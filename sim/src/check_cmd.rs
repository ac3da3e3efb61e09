//! `bpc-sim check REPORT.json --expect ...`: the `--expect` assertions on a
//! report saved with `receive -o json`, for when the expected numbers are only
//! known after the capture (a test counting what tcpdump saw, say).

use std::io::Write;
use std::process::ExitCode;

use bpc_receiver::expectation::Expectation;
use bpc_receiver::map::WorkloadMap;
use bpc_receiver::receiver::Report;

use crate::Error;

/// Options of `bpc-sim check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A report written by `bpc-sim receive -o json` (or `kubectl bpc sink -o json`).
    pub report: String,
    /// `kubectl bpc map -o json` output, for workload names in --expect.
    #[arg(long)]
    pub map: Option<String>,
    /// Assertion, e.g. 'workload=shop/web packets=120 loss=0 restarts>=1' (repeatable).
    #[arg(long, required = true)]
    pub expect: Vec<String>,
}

/// Loads a JSON report.
pub fn load_report(path: &str) -> Result<Report, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::File { path: path.to_string(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Invalid { what: "report", message: format!("{path}: {e}") })
}

/// Runs `bpc-sim check`: writes `ok - EXPECTATION` or `FAIL - why` per
/// expectation to `out`; 0 when all hold, 1 otherwise.
pub fn run_check(args: &CheckArgs, out: &mut dyn Write) -> Result<ExitCode, Error> {
    let map = match &args.map {
        Some(p) => WorkloadMap::load(p)?,
        None => WorkloadMap::default(),
    };
    let expectations =
        args.expect.iter().map(|e| Expectation::parse(e, &map)).collect::<Result<Vec<_>, _>>()?;
    let report = load_report(&args.report)?;
    let mut failed = false;
    let mut text = String::new();
    for e in &expectations {
        match e.check(&report) {
            None => text += &format!("ok - {}\n", e.text()),
            Some(why) => {
                failed = true;
                text += &format!("FAIL - {why}\n");
            }
        }
    }
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice; the verdict stands.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(Error::File { path: "stdout".into(), source: e });
        }
        _ => {}
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
