//! kubectl-bpc: the kubectl plugin (`kubectl bpc ...` once it is on PATH).
//!
//! Parses the command line and hands each command to its library module.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_bpc::attach::{AttachArgs, DetachArgs};
use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::kube_context::KubeArgs;
use kubectl_bpc::manifest::input::{self, Encoding};
use kubectl_bpc::manifest::{Edit, edit_sources};
use kubectl_bpc::sidecar::{SidecarFormArg, SidecarOptions};
use kubectl_bpc::{Error, attach, capture, map, output, sink, status, verify};

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

/// `-f FILE|DIR|-` and `-R`, as kubectl reads them.
#[derive(clap::Args)]
struct FileArg {
    /// Manifest file, directory (its .json, .yaml and .yml files), or - for standard input: YAML
    /// documents, kind: List, or JSON objects back to back.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// With a directory, read its subdirectories too.
    #[arg(short = 'R', long)]
    recursive: bool,
}

#[derive(clap::Args)]
struct InjectArgs {
    #[command(flatten)]
    file: FileArg,
    #[command(flatten)]
    options: SidecarOptions,
    /// How the agent gets CAP_NET_RAW (auto means default offline: no cluster to ask).
    #[arg(long, value_enum, default_value = "auto")]
    capabilities: CapabilitiesArg,
    /// Inject even into pods with hostNetwork: true.
    #[arg(long)]
    allow_host_network: bool,
    /// How the agent joins the pod: native sidecar (Kubernetes 1.29+; auto means native
    /// offline) or a plain container for older clusters.
    #[arg(long, value_enum, default_value = "auto")]
    sidecar: SidecarFormArg,
    /// Write the sidecar as Kustomize patches plus a kustomization.yaml into DIR instead of printing
    /// edited manifests (the manifests are its resources, not edited).
    #[arg(long, value_name = "DIR")]
    kustomize: Option<PathBuf>,
}

/// The one file `--kustomize` takes, as UTF-8 text (a byte order mark kept).
fn read_one(file: &FileArg) -> Result<String, Error> {
    let mut sources = input::read_path(&file.file, file.recursive)?;
    let (Some(source), true) = (sources.pop(), sources.is_empty()) else {
        return Err(Error::Usage(format!(
            "--kustomize takes one file, and {} is a directory: run it once per file",
            file.file.display()
        )));
    };
    if source.encoding != Encoding::Utf8 {
        return Err(Error::Usage(format!(
            "{} is UTF-16: Kustomize reads UTF-8, so convert it first (iconv -f UTF-16 -t UTF-8)",
            file.file.display()
        )));
    }
    Ok(if source.bom { format!("\u{feff}{}", source.text) } else { source.text })
}

fn offline(kube: &KubeArgs, file: &FileArg, edit: &Edit) -> Result<ExitCode, Error> {
    let sources = input::read_path(&file.file, file.recursive)?;
    let edited = edit_sources(&sources, edit, kube.namespace.as_deref())?;
    for note in edited.notes.iter().chain(&edited.fallbacks) {
        eprintln!("note: {note}");
    }
    for o in &edited.outcomes {
        eprintln!("{} in namespace {}: {}", o.workload, o.workload.namespace, o.action.in_manifest());
    }
    // One source comes back in its own encoding, byte order mark included;
    // several are put together as UTF-8.
    let bytes = match sources.as_slice() {
        [one] => one.encode(&edited.yaml),
        several => {
            if several.iter().any(|s| s.bom) {
                eprintln!("note: the output of several files is UTF-8 without byte order marks");
            }
            edited.yaml.into_bytes()
        }
    };
    let mut out = output::stdout();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    match &cli.command {
        Command::Completion { shell } => {
            // Into a buffer first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "kubectl-bpc", &mut script);
            output::print(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inject(args) => {
            kubectl_bpc::preflight::check_options(&args.options)?;
            let edit = Edit::Inject {
                options: args.options.clone(),
                capabilities: args.capabilities,
                allow_host_network: args.allow_host_network,
                form: args.sidecar.resolve(None)?,
            };
            match &args.kustomize {
                None => offline(&cli.kube, &args.file, &edit),
                Some(dir) => {
                    let input = read_one(&args.file)?;
                    let written = kubectl_bpc::manifest::kustomize::write(
                        &input,
                        &args.file.file,
                        dir,
                        &edit,
                        cli.kube.namespace.as_deref(),
                    )?;
                    for note in written.edited.notes.iter().chain(&written.notes) {
                        eprintln!("note: {note}");
                    }
                    for o in &written.edited.outcomes {
                        eprintln!(
                            "{} in namespace {}: {}",
                            o.workload,
                            o.workload.namespace,
                            o.action.in_manifest()
                        );
                    }
                    for file in &written.files {
                        eprintln!("wrote {}", file.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Uninject(file) => offline(&cli.kube, file, &Edit::Uninject),
        Command::Extcap(cmd) => kubectl_bpc::extcap::install::run(cmd),
        Command::Sink(args) => {
            let watch_from = if args.map_watch {
                let kube = cli.kube.connect().await?;
                let scope = kube.scope().map(str::to_owned);
                Some((kube.client, scope))
            } else {
                None
            };
            sink::run(args, watch_from).await
        }
        Command::Attach(args) => {
            kubectl_bpc::preflight::check_options(&args.options)?;
            attach::check_targets(
                &args.targets.workloads,
                args.targets.selector.as_deref(),
                false,
                cli.kube.all_namespaces,
            )?;
            attach::run_attach(args, &cli.kube.connect().await?).await
        }
        Command::Detach(args) => {
            attach::check_targets(
                &args.targets.workloads,
                args.targets.selector.as_deref(),
                args.all,
                cli.kube.all_namespaces,
            )?;
            attach::run_detach(args, &cli.kube.connect().await?).await
        }
        Command::Capture(args) => {
            args.check()?;
            capture::run(args, &cli.kube.connect().await?).await
        }
        Command::Status(args) => {
            let kube = cli.kube.connect().await?;
            status::run(args, &kube.client, kube.scope()).await
        }
        Command::Map(args) => {
            let kube = cli.kube.connect().await?;
            map::run(args, &kube.client, kube.scope()).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let kube = cli.kube.connect().await?;
            verify::run(args, &kube).await
        }
    }
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
