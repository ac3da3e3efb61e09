//! `kubectl bpc attach` and `kubectl bpc detach`: the live path.
//!
//! Each workload is read, planned with [`crate::sidecar::inject`] /
//! [`crate::sidecar::uninject`] (the same functions as the offline path),
//! checked, and written with a strategic merge patch that names only the
//! sidecar container and the status annotation and carries the
//! resourceVersion read, so a concurrent change is a 409 and the whole
//! read-plan-write is retried. One workload failing does not stop the others.
//!
//! By job: this file the flags and the two commands; `targets` which
//! workloads; `change` one workload's read-plan-write; `report` the output
//! and the exit code.

mod change;
mod report;
mod targets;

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::capabilities::{CapabilitiesArg, CapabilityPlanner};
use crate::kube_context::Kube;
use crate::output::{self, ObjectFormat};
use crate::sidecar::{self, Change, SidecarFlags, SidecarForm, SidecarFormArg};
use crate::workload::{KindApi, WorkloadId};
use crate::{Error, preflight};

pub use change::{attach_one, detach_one, dry_run_pod};
use report::{Reporter, confirm, wait_rollouts};
pub use targets::{check_targets, resolve};

/// Attempts of a read-plan-write cycle when the object changed under us.
const CONFLICT_ATTEMPTS: usize = 5;

/// `--dry-run` modes, as kubectl's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Write for real.
    #[default]
    None,
    /// Nothing is sent that changes anything; the result is printed.
    Client,
    /// The write is sent with dryRun=All: validated and admitted, not persisted.
    Server,
}

/// Flags of commands that change workloads.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// Only show what would change: client (print the result) or server (sent with dryRun=All).
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// Print the changed objects in this format (default for --dry-run=client: yaml).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ObjectFormat>,
    /// Print a unified diff of each workload instead of the object (with --dry-run).
    #[arg(long)]
    pub diff: bool,
    /// Wait for the rollouts to finish, all workloads together (a workload fails early when its
    /// pods are refused, a new pod is unschedulable, or its agent crash-loops).
    #[arg(long)]
    pub wait: bool,
    /// With --wait, how long the whole command may take.
    #[arg(long, value_parser = bpc_contract::duration::parse_duration, default_value = "5m")]
    pub timeout: Duration,
}

/// The workloads a command acts on: names, or a label selector.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// Workloads: NAME (a Deployment), deploy/NAME, sts/NAME, ds/NAME or cronjob/NAME.
    #[arg(value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
    /// Every Deployment, StatefulSet, DaemonSet and CronJob matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// `kubectl bpc attach`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # Mirror the checkout Deployment's traffic to a collector
  kubectl bpc attach checkout -n shop --collector 10.0.0.5

  # Only HTTPS, two collectors, capped at 20k packets/s per pod, wait for the rollout
  kubectl bpc attach deploy/checkout --collector 10.0.0.5 --collector probe.obs.svc \\
      --filter 'tcp port 443' --max-pps 20000 --wait

  # Preview every workload labelled tier=web, as a diff
  kubectl bpc attach -l tier=web --collector 10.0.0.5 --dry-run --diff")]
pub struct AttachArgs {
    /// Which workloads.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// The sidecar's flags.
    #[command(flatten)]
    pub flags: SidecarFlags,
    /// How the agent gets CAP_NET_RAW.
    #[arg(long, value_enum, default_value = "auto")]
    pub capabilities: CapabilitiesArg,
    /// How the agent joins the pod: a native sidecar (first init container, restartPolicy
    /// Always: capture from the pod's first packet to its last; Kubernetes 1.29+), a plain
    /// container, or auto (native where the API server supports it).
    #[arg(long, value_enum, default_value = "auto")]
    pub sidecar: SidecarFormArg,
    /// Attach even to pods with hostNetwork: true (captures the whole node's traffic).
    #[arg(long)]
    pub allow_host_network: bool,
    /// Dry run, output, wait.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `kubectl bpc detach`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # Remove the sidecar from one Deployment
  kubectl bpc detach checkout -n shop

  # Remove it from every workload of the namespace it was attached to, showing the diff first
  kubectl bpc detach --all -n shop --dry-run --diff
  kubectl bpc detach --all -n shop")]
pub struct DetachArgs {
    /// Which workloads.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Every workload with the sidecar attached (in the namespace, or with -A everywhere).
    #[arg(long)]
    pub all: bool,
    /// Dry run, output, wait.
    #[command(flatten)]
    pub change: ChangeArgs,
}

impl AttachArgs {
    /// Checks what can be checked before connecting: the sidecar's options
    /// and the target arguments.
    pub fn check(&self, all_namespaces: bool) -> Result<(), Error> {
        preflight::check_options(&self.flags.options())?;
        check_targets(&self.targets.workloads, self.targets.selector.as_deref(), false, all_namespaces)
            .map(drop)
    }
}

impl DetachArgs {
    /// Checks the target arguments before connecting.
    pub fn check(&self, all_namespaces: bool) -> Result<(), Error> {
        check_targets(&self.targets.workloads, self.targets.selector.as_deref(), self.all, all_namespaces)
            .map(drop)
    }
}

/// What happened to one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The workload.
    pub workload: WorkloadId,
    /// What was done.
    pub action: Change,
    /// The object after the change (for -o).
    pub object: Value,
    /// The object before it (for --diff).
    pub before: Value,
}

/// The HTTP verb and resource named when the API server says 403.
fn api_error(e: kube::Error, verb: &str, id: &WorkloadId) -> Error {
    let ns = &id.namespace;
    let plural = format!("{}s.{}", id.kind.lower(), id.kind.resource().rsplit('.').next().unwrap_or("apps"));
    match e {
        kube::Error::Api(s) if s.code == 404 => Error::Workload(format!(
            "{id} not found in namespace {ns}: check the name with kubectl get {plural} -n {ns}"
        )),
        kube::Error::Api(s) if s.code == 403 => Error::Workload(format!(
            "{id} in namespace {ns}: forbidden: {}; kubectl-bpc needs the RBAC verb '{verb}' on {plural} in \
             namespace {ns} (check with: kubectl auth can-i {verb} {plural} -n {ns})",
            s.message
        )),
        kube::Error::Api(s) if s.code == 409 => Error::Workload(format!(
            "{id} in namespace {ns} kept changing while it was being patched ({CONFLICT_ATTEMPTS} attempts): \
             try again when its controller is idle"
        )),
        kube::Error::Api(s) => {
            Error::Workload(format!("{id} in namespace {ns}: {verb} refused: {}", s.message))
        }
        other => Error::Workload(format!("{id} in namespace {ns}: {verb} failed: {other}")),
    }
}

/// The sidecar form for this API server: `--sidecar auto` and `native` read
/// its version once (`/version`); `container` asks nothing.
async fn sidecar_form(kube: &Kube, arg: SidecarFormArg) -> Result<SidecarForm, Error> {
    if arg == SidecarFormArg::Container {
        return Ok(SidecarForm::Container);
    }
    let minor = kube.server_minor().await?;
    let form = arg.resolve(Some(minor))?;
    if arg == SidecarFormArg::Auto && form == SidecarForm::Container {
        eprintln!(
            "note: the API server is Kubernetes 1.{minor}, before native sidecars (1.{}): the agent is added as a \
             plain container, which misses the pod's first packets and may miss its last ones \
             (docs/guide.md#two-forms-of-sidecar)",
            sidecar::NATIVE_SIDECAR_MINOR
        );
    }
    Ok(form)
}

/// Runs `kubectl bpc attach`.
pub async fn run_attach(args: &AttachArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let deadline = std::time::Instant::now() + args.change.timeout;
    preflight::check_options(&args.flags.options())?;
    let form = sidecar_form(kube, args.sidecar).await?;
    let targets = resolve(kube, &args.targets.workloads, args.targets.selector.as_deref(), false).await?;
    if targets.is_empty() {
        eprintln!("no workloads match the selector");
    }
    let mut planner = CapabilityPlanner::new(args.capabilities);
    let mut report = Reporter { change: &args.change, objects: Vec::new(), failed: 0 };
    let mut changed = Vec::new();
    for target in targets {
        let result = match target {
            Ok((id, object)) => attach_one(kube, &id, object, args, form, &mut planner).await,
            Err(e) => Err(e),
        };
        changed.extend(report.outcome(result)?);
    }
    for (workload, e) in wait_rollouts(kube, &args.change, &changed, true, deadline).await {
        report.failed(&e);
        if confirm(&format!("Detach the sidecar from {workload} now?")) {
            let object = workload.kind.api(&kube.client, &workload.namespace);
            match object.get(&workload.name).await {
                Ok(o) => match detach_one(kube, &workload, o, DryRun::None).await {
                    Ok(d) => output::print(&format!("{} {}\n", d.workload, d.action.in_cluster()))?,
                    Err(e) => report.failed(&e),
                },
                Err(e) => report.failed(&api_error(e, "get", &workload)),
            }
        }
    }
    report.finish()
}

/// Runs `kubectl bpc detach`.
pub async fn run_detach(args: &DetachArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let deadline = std::time::Instant::now() + args.change.timeout;
    let targets = resolve(kube, &args.targets.workloads, args.targets.selector.as_deref(), args.all).await?;
    if targets.is_empty() {
        eprintln!("no attached workloads found");
    }
    let mut report = Reporter { change: &args.change, objects: Vec::new(), failed: 0 };
    let mut changed = Vec::new();
    for target in targets {
        let result = match target {
            Ok((id, object)) => detach_one(kube, &id, object, args.change.dry_run).await,
            Err(e) => Err(e),
        };
        changed.extend(report.outcome(result)?);
    }
    for (_, e) in wait_rollouts(kube, &args.change, &changed, false, deadline).await {
        report.failed(&e);
    }
    report.finish()
}
