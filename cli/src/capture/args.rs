//! What `kubectl bpc capture` is asked: its flags ([`CaptureArgs`]), checked
//! once into the [`Capture`] the rest of the module works from. Callers
//! in code (`verify --ephemeral`, the Wireshark extcap) build a [`Capture`]
//! directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::capabilities::CapabilitiesArg;
use crate::sidecar::{AgentFlags, SidecarOptions};
use crate::workload::WorkloadRef;
use crate::{Error, preflight};

/// `kubectl bpc capture`.
// The agent flags are the sidecar's; some read differently for an ephemeral
// container (no resource limits, pcapng as the other output), so their help
// is reworded here.
#[derive(Debug, Clone, clap::Args)]
#[command(
    group(clap::ArgGroup::new("output").required(true).args(["collectors", "write"])),
    mut_arg("collectors", |a| a.required(false)
        .help("Stream GRE to this collector (as the sidecar does); repeat or comma-separate, up to 4")),
    mut_arg("max_pps", |a| a.help("Most packets per second per pod (excess dropped and counted): ephemeral \
        containers have no resource limits, this is the cap")),
    mut_arg("max_mbps", |a| a.help("Most megabits per second per pod (excess dropped and counted)")),
    mut_arg("oversize", |a| a.help("With --collector: oversize frame handling [agent default: segment]")),
    mut_arg("gre_profile", |a| a.help("With --collector: GRE header profile [agent default: standard]")),
    mut_arg("encap", |a| a.help("With --collector: the format, gre, vxlan, erspan-ii or erspan-iii \
        [agent default: gre]")),
    mut_arg("key", |a| a.help("With --collector: GRE key instead of the workload key")),
    mut_arg("buffer", |a| a.help("Capture ring size in MiB [agent default: 24]")),
    after_help = "Examples:
  # Straight into Wireshark
  kubectl bpc capture pod/web-1 -w - | wireshark -k -i -

  # Every running pod of a Deployment, 30 s of HTTP, into one file (one interface per pod)
  kubectl bpc capture deploy/web -n shop --filter 'tcp port 8080' --duration 30s -w web.pcapng

  # Stream to a GRE collector, as the sidecar does, for 5 minutes
  kubectl bpc capture -l app=web --collector 10.0.0.5 --duration 5m

Ephemeral containers cannot be removed: the finished capture stays listed in the pod as a
terminated container (kubectl bpc status shows it). They cannot have resources, ports or
probes: --max-pps/--max-mbps cap the agent's work instead."
)]
pub struct CaptureArgs {
    /// What to capture: pod/NAME, or a workload (NAME, deploy/NAME, sts/NAME, ds/NAME: its running pods).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Every running pod matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// How long to capture (0: until Ctrl-C or --count).
    #[arg(long, value_parser = bpc_contract::duration::parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Stop each pod's capture after this many packets.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Write pcapng to FILE, or - for stdout (e.g. into wireshark -k -i -).
    #[arg(short = 'w', long = "write", value_name = "FILE|-")]
    pub write: Option<PathBuf>,
    /// How the agent captures and sends.
    #[command(flatten)]
    pub agent: AgentFlags,
    /// How the agent gets CAP_NET_RAW.
    #[arg(long, value_enum, default_value = "auto")]
    pub capabilities: CapabilitiesArg,
    /// Suffix of the container name (default: random); tests fix it.
    #[arg(long, hide = true)]
    pub id: Option<String>,
}

/// A capture, checked: which pods, how the agent runs, where its packets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Which pods.
    pub pods: Selection,
    /// The agent's settings (no collectors with `pcapng`).
    pub agent: SidecarOptions,
    /// Pcapng to this file (`-`: standard output); None: GRE to the agent's collectors.
    pub pcapng: Option<PathBuf>,
    /// How long to capture; zero: until stopped.
    pub duration: Duration,
    /// Stop each pod's capture after this many packets.
    pub count: Option<u64>,
    /// How the agent gets CAP_NET_RAW.
    pub capabilities: CapabilitiesArg,
    /// Suffix of the container names (default: random).
    pub id: Option<String>,
    /// Nothing on stderr but the one line of a failure (the Wireshark extcap:
    /// Wireshark shows an extcap's stderr as its error dialog).
    pub quiet: bool,
}

/// The pods a capture names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Pods and workloads by name.
    Targets(Vec<Target>),
    /// Every running pod matching a label selector.
    Selector(String),
}

impl CaptureArgs {
    /// Checks what can be checked without a cluster: the capture these flags ask for.
    pub fn validate(&self) -> Result<Capture, Error> {
        let pods = match (&self.targets[..], &self.selector) {
            ([], None) => {
                return Err(Error::Usage(
                    "name what to capture: pod/NAME, NAME, deploy/NAME, sts/NAME, ds/NAME, or -l SELECTOR"
                        .into(),
                ));
            }
            ([], Some(selector)) => Selection::Selector(selector.clone()),
            (targets, None) => {
                Selection::Targets(targets.iter().map(|t| Target::parse(t)).collect::<Result<_, _>>()?)
            }
            (_, Some(_)) => return Err(Error::Usage("give targets or -l SELECTOR, not both".into())),
        };
        let agent = self.agent.options();
        if self.write.is_some() {
            for (set, flag) in [
                (agent.oversize.is_some(), "--oversize"),
                (agent.gre_profile.is_some(), "--gre-profile"),
                (agent.encap.is_some(), "--encap"),
                (agent.vni.is_some(), "--vni"),
                (agent.session.is_some(), "--session"),
                (agent.key.is_some(), "--key"),
            ] {
                if set {
                    return Err(Error::Usage(format!("{flag} applies to --collector, not to -w")));
                }
            }
            if let Some(f) = &agent.filter {
                preflight::compile_filter(f)?;
            }
            if agent.snaplen == Some(0) {
                return Err(Error::Usage("--snaplen 0 would keep nothing: give at least 64".into()));
            }
        } else {
            preflight::check_options(&agent)?;
        }
        Ok(Capture {
            pods,
            agent,
            pcapng: self.write.clone(),
            duration: self.duration,
            count: self.count,
            capabilities: self.capabilities,
            id: self.id.clone(),
            quiet: false,
        })
    }
}

/// One TARGET argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `pod/NAME`.
    Pod(String),
    /// A workload: its running pods.
    Workload(WorkloadRef),
}

impl Target {
    /// Parses `pod/NAME`, `po/NAME`, `pods/NAME` or a workload reference.
    pub fn parse(arg: &str) -> Result<Target, Error> {
        match arg.split_once('/') {
            Some(("pod" | "po" | "pods", name)) if !name.is_empty() && !name.contains('/') => {
                Ok(Target::Pod(name.to_owned()))
            }
            _ => WorkloadRef::parse(arg)
                .map(Target::Workload)
                .map_err(|e| Error::Usage(format!("{e} (or pod/NAME for one pod)"))),
        }
    }
}

/// Parses `capture` command lines, for the tests of this module.
#[cfg(test)]
pub(super) mod fixture {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CaptureArgs,
    }

    /// `kubectl bpc capture ARGS`, parsed.
    pub(crate) fn parse(a: &[&str]) -> Result<CaptureArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once(&"capture").chain(a)).map(|cli| cli.args)
    }

    /// `kubectl bpc capture ARGS`, parsed and checked.
    pub(crate) fn capture(a: &[&str]) -> Capture {
        parse(a).unwrap().validate().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use crate::workload::WorkloadKind;

    #[test]
    fn targets_parse_pods_and_workloads() {
        assert_eq!(Target::parse("pod/web-1").unwrap(), Target::Pod("web-1".into()));
        assert_eq!(Target::parse("po/web-1").unwrap(), Target::Pod("web-1".into()));
        assert!(
            matches!(Target::parse("sts/db").unwrap(), Target::Workload(r) if r.kind == Some(WorkloadKind::StatefulSet))
        );
        assert!(
            matches!(Target::parse("web").unwrap(), Target::Workload(r) if r.kind_or_deployment() == WorkloadKind::Deployment)
        );
        assert!(
            matches!(Target::parse("job/x").unwrap(), Target::Workload(r) if r.kind == Some(WorkloadKind::Job)),
            "a Job's running pods can be captured"
        );
        assert!(Target::parse("rs/x").unwrap_err().to_string().contains("pod/NAME"));
        assert!(Target::parse("pod/").is_err());
    }

    #[test]
    fn an_output_is_required_and_gre_flags_do_not_go_with_write() {
        assert!(parse(&["pod/a"]).is_err(), "neither --collector nor -w");
        assert!(parse(&["pod/a", "-w", "x.pcapng", "--collector", "198.18.0.2"]).is_err(), "both");
        let e = parse(&["pod/a", "-w", "-", "--gre-profile", "netis"]).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("--gre-profile applies to --collector"), "{e}");
        assert!(parse(&["-w", "-"]).unwrap().validate().is_err(), "no target");
        assert!(
            parse(&["pod/a", "-l", "app=web", "-w", "-"]).unwrap().validate().is_err(),
            "both kinds of target"
        );
        capture(&["pod/a", "-w", "-"]);
        assert!(parse(&["pod/a", "--collector", "198.18.0.2:80"]).unwrap().validate().is_err());
        let e = parse(&["pod/a", "-w", "-", "--snaplen", "0"]).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("would keep nothing"), "{e}");
    }

    #[test]
    fn a_checked_capture_holds_what_the_flags_said() {
        let c =
            capture(&["deploy/web", "pod/a", "--collector", "198.18.0.2", "--count", "5", "--max-pps", "9"]);
        let web = WorkloadRef { kind: Some(WorkloadKind::Deployment), name: "web".into() };
        assert_eq!(c.pods, Selection::Targets(vec![Target::Workload(web), Target::Pod("a".into())]));
        assert_eq!(
            (c.agent.collectors.as_slice(), c.agent.max_pps),
            (&["198.18.0.2".to_owned()][..], Some(9))
        );
        assert_eq!((c.pcapng, c.count, c.duration), (None, Some(5), Duration::from_secs(60)));
        assert_eq!(capture(&["-l", "app=web", "-w", "-"]).pods, Selection::Selector("app=web".into()));
    }
}
