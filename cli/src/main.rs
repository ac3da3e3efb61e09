//! kubectl-bpc: the kubectl plugin (`kubectl bpc ...` once it is on PATH).
//!
//! Parses the command line and hands each command to its library module
//! (after the checks that need no cluster, before connecting).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_bpc::attach::{AttachArgs, DetachArgs};
use kubectl_bpc::inject::{FileArg, InjectArgs};
use kubectl_bpc::kube_context::KubeArgs;
use kubectl_bpc::{Error, attach, capture, inject, map, output, sink, status, verify};

#[derive(Parser)]
#[command(
    name = "kubectl-bpc",
    bin_name = "kubectl bpc",
    version,
    about = "Mirror a workload's own traffic to a packet analyser over GRE, with a capture sidecar",
    after_help = "Exit codes: 0 success (also when the reader of the output closes it early, as `| head` does), \
                  1 a workload failed (the others were processed) or a check failed, 2 usage, configuration \
                  or API error, 130 interrupted (Ctrl-C)."
)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add the bpc-agent capture sidecar to workloads.
    Attach(Box<AttachArgs>),
    /// Remove exactly what attach added.
    Detach(DetachArgs),
    /// Capture running pods now, with no restart (an ephemeral container): to a collector or pcapng.
    Capture(Box<capture::CaptureArgs>),
    /// Add the sidecar to manifests (offline, for GitOps); prints YAML.
    #[command(after_help = "Examples:
  kubectl bpc inject -f deploy.yaml --collector 10.0.0.5 > deploy.bpc.yaml
  kubectl bpc inject -f base/app.yaml --collector 10.0.0.5 --kustomize overlays/bpc && kubectl kustomize overlays/bpc
  kustomize build overlays/prod | kubectl bpc inject -f - --collector probe.obs.svc | kubectl apply -f -")]
    Inject(Box<InjectArgs>),
    /// Remove the sidecar from manifests (offline); prints YAML.
    #[command(after_help = "Example:\n  kubectl bpc uninject -f deploy.bpc.yaml > deploy.yaml")]
    Uninject(FileArg),
    /// Capture health of attached workloads, with a verdict per pod.
    #[command(after_help = "Examples:\n  kubectl bpc status -n shop\n  kubectl bpc status -A -o json")]
    Status(status::StatusArgs),
    /// Prove end to end that a workload's capture reaches a sink.
    #[command(
        after_help = "Example:\n  kubectl bpc verify deploy/checkout -n shop --sink 10.0.0.9 --timeout 60s"
    )]
    Verify(verify::VerifyArgs),
    /// Run a GRE receiver in-process (the bpc-sim receiver).
    #[command(after_help = "Example:\n  kubectl bpc sink --listen 0.0.0.0 --duration 30")]
    Sink(sink::SinkArgs),
    /// Pod IP -> workload and key table for collectors.
    #[command(
        after_help = "Examples:\n  kubectl bpc map -A -o json > map.json\n  kubectl bpc map -A --watch"
    )]
    Map(map::MapArgs),
    /// Wireshark: install kubectl-bpc as the extcap interface "bpc" (Kubernetes workloads).
    #[command(
        subcommand,
        after_help = "Example:\n  kubectl bpc extcap install && tshark -i bpc -o extcap.bpc.namespace:shop -o extcap.bpc.target:deploy/web"
    )]
    Extcap(kubectl_bpc::extcap::install::ExtcapCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  kubectl-bpc completion bash > /etc/bash_completion.d/kubectl-bpc")]
    Completion {
        /// Shell to generate the script for.
        shell: clap_complete::Shell,
    },
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let kube = &cli.kube;
    match &cli.command {
        Command::Completion { shell } => completion(*shell),
        Command::Inject(args) => inject::run_inject(args, kube.namespace.as_deref()),
        Command::Uninject(file) => inject::run_uninject(file, kube.namespace.as_deref()),
        Command::Extcap(cmd) => kubectl_bpc::extcap::install::run(cmd),
        Command::Sink(args) => sink::run(args, kube).await,
        Command::Attach(args) => {
            args.check(kube.all_namespaces)?;
            attach::run_attach(args, &kube.connect().await?).await
        }
        Command::Detach(args) => {
            args.check(kube.all_namespaces)?;
            attach::run_detach(args, &kube.connect().await?).await
        }
        Command::Capture(args) => {
            let capture = args.validate()?;
            capture::run(&capture, &kube.connect().await?).await
        }
        Command::Status(args) => {
            let kube = kube.connect().await?;
            status::run(args, &kube.client, kube.scope()).await
        }
        Command::Map(args) => {
            let kube = kube.connect().await?;
            map::run(args, &kube.client, kube.scope()).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify::run(args, &kube.connect().await?).await,
    }
}

/// `kubectl bpc completion SHELL`.
fn completion(shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    // Into a buffer first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-bpc", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Wireshark calls its extcaps with flags of its own (--extcap-interfaces, --capture --fifo ...).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if kubectl_bpc::extcap::is_extcap_call(&args) {
        return kubectl_bpc::extcap::main(&args).await;
    }
    let cli = Cli::parse_from(args);
    match run(cli).await {
        Ok(code) => code,
        // The reader closed the pipe (`| head`): it has what it wanted.
        Err(e) if e.is_closed_pipe() => e.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
