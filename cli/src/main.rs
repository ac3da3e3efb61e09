//! kubectl-bpc: the kubectl plugin.
//!
//! Placeholder entry point (status/verify/sink/map only) until the CLI
//! skeleton with KubeArgs and attach/detach lands and replaces it.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Parser)]
#[command(
    name = "kubectl-bpc",
    version,
    about = "Mirror a workload's own traffic to a packet analyser over GRE"
)]
struct Cli {
    /// Path to the kubeconfig file.
    #[arg(long, global = true, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture health of attached workloads, with a verdict per pod.
    Status(kubectl_bpc::status::StatusArgs),
    /// Prove end to end that a workload's capture reaches a sink.
    Verify(kubectl_bpc::verify::VerifyArgs),
    /// Run a GRE receiver in-process.
    Sink(kubectl_bpc::sink::SinkArgs),
    /// Pod IP -> workload and key table for collectors.
    Map(kubectl_bpc::map::MapArgs),
    /// Print a shell completion script.
    ///
    /// Example: kubectl-bpc completion bash > /etc/bash_completion.d/kubectl-bpc
    Completion {
        /// Shell to generate the script for (bash, zsh, fish, ...).
        shell: clap_complete::Shell,
    },
}

async fn client(cli: &Cli) -> anyhow::Result<(kube::Client, String)> {
    let options = KubeConfigOptions { context: cli.context.clone(), ..Default::default() };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if cli.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    let ns = cli.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    Ok((kube::Client::try_from(config)?, ns))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let scope = |ns: &str| if cli.all_namespaces { None } else { Some(ns.to_owned()) };
    Ok(match &cli.command {
        Command::Sink(args) => kubectl_bpc::sink::run(args).await?,
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "kubectl-bpc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Status(args) => {
            let (client, ns) = client(&cli).await?;
            kubectl_bpc::status::run(args, &client, scope(&ns).as_deref()).await?
        }
        Command::Map(args) => {
            let (client, ns) = client(&cli).await?;
            kubectl_bpc::map::run(args, &client, scope(&ns).as_deref()).await?;
            ExitCode::SUCCESS
        }
        Command::Verify(args) => {
            let (client, ns) = client(&cli).await?;
            kubectl_bpc::verify::run(args, &client, &ns).await?
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
