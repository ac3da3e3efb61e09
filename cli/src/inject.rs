//! `kubectl bpc inject` and `kubectl bpc uninject`: the offline path. Reads
//! manifests (files, a directory, standard input), edits them with
//! [`crate::manifest`] and prints them, or writes Kustomize patches.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::capabilities::CapabilitiesArg;
use crate::manifest::input::{self, Encoding};
use crate::manifest::{Edit, edit_sources, kustomize};
use crate::sidecar::{SidecarFlags, SidecarFormArg};
use crate::{Error, output, preflight};

/// `-f FILE|DIR|-` and `-R`, as kubectl reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArg {
    /// Manifest file, directory (its .json, .yaml and .yml files), or - for standard input: YAML
    /// documents, kind: List, or JSON objects back to back.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// With a directory, read its subdirectories too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `kubectl bpc inject`.
#[derive(Debug, Clone, clap::Args)]
pub struct InjectArgs {
    /// The manifests.
    #[command(flatten)]
    pub file: FileArg,
    /// The sidecar's flags.
    #[command(flatten)]
    pub flags: SidecarFlags,
    /// How the agent gets CAP_NET_RAW (auto means default offline: no cluster to ask).
    #[arg(long, value_enum, default_value = "auto")]
    pub capabilities: CapabilitiesArg,
    /// Inject even into pods with hostNetwork: true.
    #[arg(long)]
    pub allow_host_network: bool,
    /// How the agent joins the pod: native sidecar (Kubernetes 1.29+; auto means native
    /// offline) or a plain container for older clusters.
    #[arg(long, value_enum, default_value = "auto")]
    pub sidecar: SidecarFormArg,
    /// Write the sidecar as Kustomize patches plus a kustomization.yaml into DIR instead of printing
    /// edited manifests (the manifests are its resources, not edited).
    #[arg(long, value_name = "DIR")]
    pub kustomize: Option<PathBuf>,
}

/// Runs `kubectl bpc inject`; `namespace` is `-n`, for manifests without one.
pub fn run_inject(args: &InjectArgs, namespace: Option<&str>) -> Result<ExitCode, Error> {
    let options = args.flags.options();
    preflight::check_options(&options)?;
    let edit = Edit::Inject {
        options,
        capabilities: args.capabilities,
        allow_host_network: args.allow_host_network,
        form: args.sidecar.resolve(None)?,
    };
    let Some(dir) = &args.kustomize else { return offline(&args.file, &edit, namespace) };
    let input = read_one(&args.file)?;
    let written = kustomize::write(&input, &args.file.file, dir, &edit, namespace)?;
    for note in written.edited.notes.iter().chain(&written.notes) {
        eprintln!("note: {note}");
    }
    report_outcomes(&written.edited);
    for file in &written.files {
        eprintln!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `kubectl bpc uninject`.
pub fn run_uninject(file: &FileArg, namespace: Option<&str>) -> Result<ExitCode, Error> {
    offline(file, &Edit::Uninject, namespace)
}

/// What was done to each workload, on stderr.
fn report_outcomes(edited: &crate::manifest::Edited) {
    for o in &edited.outcomes {
        eprintln!("{} in namespace {}: {}", o.workload, o.workload.namespace, o.action.in_manifest());
    }
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

/// Edits the manifests and prints them.
fn offline(file: &FileArg, edit: &Edit, namespace: Option<&str>) -> Result<ExitCode, Error> {
    let sources = input::read_path(&file.file, file.recursive)?;
    let edited = edit_sources(&sources, edit, namespace)?;
    for note in edited.notes.iter().chain(&edited.fallbacks) {
        eprintln!("note: {note}");
    }
    report_outcomes(&edited);
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
