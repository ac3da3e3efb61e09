//! `kubectl bpc status`: is capture working, everywhere, now?
//!
//! For every attached workload: rollout state, then per pod the agent
//! container state and live counters read through the pod proxy, and a
//! verdict with a hint.
//!
//! * [`collect`]: the cluster reads (workloads, pods, two `/stats` samples);
//! * [`judge`]: the verdicts, from a table of checks, pure;
//! * [`report`]: the report they make, the documented `-o json` document;
//! * [`render`]: the report for people.

mod collect;
mod judge;
mod render;
mod report;

use std::io::Write;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use crate::{Error, output};

pub use collect::collect;
pub use judge::{Check, HintContext, POD_CHECKS, PodObservation, judge, judge_workload};
pub use render::{Marks, render, render_text};
pub use report::{
    AgentContainer, ContainerState, Judgement, PodReport, Rollout, StatusReport, Summary, Termination,
    Verdict, WorkloadReport,
};

/// Output format of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFormat {
    /// Marks, one line per pod, hints under failures.
    #[default]
    Table,
    /// Table with extra columns (workload key, collector addresses).
    Wide,
    /// The documented JSON report.
    Json,
}

/// Arguments of `kubectl bpc status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Workloads to check (`deploy/web`, `sts/db`, `ds/x` or a bare name); default: every attached one.
    pub workloads: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
    /// Seconds without a captured packet before a pod is NO-TRAFFIC.
    #[arg(long, default_value_t = 60)]
    pub no_traffic_after: u64,
    /// Seconds between the two counter samples used to see drops rising (0: one sample).
    #[arg(long, default_value_t = 2)]
    pub sample_interval: u64,
    /// Agent log lines shown for a crash-looping agent.
    #[arg(long, default_value_t = 10)]
    pub log_lines: i64,
    /// List the `kubectl bpc capture` containers of the pods instead (running and finished).
    #[arg(long)]
    pub captures: bool,
}

/// Entry point of `kubectl bpc status`: exit 0 all OK, 1 anything not OK;
/// API and usage errors are returned (the caller exits 2).
pub async fn run(args: &StatusArgs, client: &Client, namespace: Option<&str>) -> Result<ExitCode, Error> {
    if args.captures {
        return run_captures(client, namespace).await;
    }
    let report = collect(client, namespace, args).await?;
    let marks = if output::is_terminal() { Marks::TTY } else { Marks::PLAIN };
    render(&report, args.output, marks, &mut output::stdout())?;
    Ok(report.exit_code())
}

/// `status --captures`: one line per capture container, per pod.
async fn run_captures(client: &Client, namespace: Option<&str>) -> Result<ExitCode, Error> {
    let pods: kube::Api<Pod> = crate::kube_context::scoped_api(client, namespace);
    let list = pods.list(&kube::api::ListParams::default()).await?;
    let mut rows = vec![
        ["NAMESPACE", "POD", "CONTAINER", "STARTED", "STATE", "AGENT REPORT"].map(String::from).to_vec(),
    ];
    for p in &list.items {
        for c in crate::capture::captures_of(p) {
            rows.push(vec![
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                c.container,
                c.started.unwrap_or_else(|| "-".into()),
                c.state,
                c.report.unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let mut out = output::stdout();
    if rows.len() == 1 {
        writeln!(out, "no captures")?;
        return Ok(ExitCode::SUCCESS);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}
