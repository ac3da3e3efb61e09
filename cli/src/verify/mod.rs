//! `kubectl bpc verify`: prove end to end that a workload's capture reaches a
//! collector.
//!
//! Starts an embedded receiver, adds it as an extra collector to the
//! workload's sidecar (keeping the user's collectors), waits until every
//! ready pod's stream (by workload key and pod IP) delivered enough packets,
//! then restores the original collectors, also on timeout, error or Ctrl-C.
//!
//! `--ephemeral` proves the same path with no rollout: an ephemeral capture
//! container (`kubectl bpc capture --collector SINK`) in each running pod
//! streams to the receiver; the workload's spec is not touched.

mod attached;
mod ephemeral;
mod evaluate;
mod report;
mod target;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::Error;
use crate::kube_context::Kube;
use crate::sink::{GreTally, StreamReport};
use bpc_contract::duration::parse_duration;

pub use crate::sidecar::{MAX_COLLECTORS, VERIFY_ANNOTATION};

pub use attached::*;
pub use ephemeral::*;
pub use evaluate::*;
pub use report::*;
pub use target::*;

/// Arguments of `kubectl bpc verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The workload: `deploy/NAME`, `sts/NAME`, `ds/NAME` (a bare name means a Deployment).
    pub workload: String,
    /// Local IPv4 address the embedded receiver listens on.
    #[arg(long)]
    pub sink: IpAddr,
    /// Address the pods send to, when it differs from --sink (NAT, kind host).
    #[arg(long)]
    pub advertise: Option<IpAddr>,
    /// How long to wait for every pod's stream (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Packets each pod must deliver to pass.
    #[arg(long, default_value_t = 10)]
    pub min_packets: u64,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = VerifyFormat::Table)]
    pub output: VerifyFormat,
    /// Prove each running pod's capture and path with an ephemeral capture container (no
    /// rollout, the workload need not be attached) instead of re-pointing the sidecar.
    #[arg(long)]
    pub ephemeral: bool,
    /// With --ephemeral: the agent image [default: ghcr.io/kubectl-bpc/bpc-agent:<plugin version>].
    #[arg(long, value_name = "IMAGE", requires = "ephemeral")]
    pub image: Option<String>,
}

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerifyFormat {
    /// PASS/FAIL lines.
    #[default]
    Table,
    /// The report as JSON.
    Json,
}

/// Where something receives GRE packets: the embedded receiver, or a fake.
pub trait StreamSource {
    /// Current per-stream counters.
    fn snapshot(&self) -> Vec<StreamReport>;
}

impl StreamSource for GreTally {
    fn snapshot(&self) -> Vec<StreamReport> {
        GreTally::snapshot(self)
    }
}

/// Entry point of `kubectl bpc verify`: exit 0 PASS, 1 FAIL; errors are
/// returned (the caller exits 2 for usage and API errors, 1 for a restore
/// that failed or a receiver error, 130 for Ctrl-C).
pub async fn run(args: &VerifyArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let tally = GreTally::start(args.sink)?;
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = if args.ephemeral {
        verify_ephemeral(kube, args, &tally, interrupt).await?
    } else {
        verify(&kube.client, &kube.namespace, args, &tally, interrupt).await?
    };
    render(&report, args.output, &mut crate::output::stdout())?;
    Ok(report.exit_code())
}
