//! Wireshark's side of the conversation: the flags Wireshark (and tshark,
//! through dumpcap) calls an extcap with, parsed once into a [`Request`],
//! and the sentences the extcap answers with (`extcap`, `interface`, `dlt`,
//! `arg`, `value`), as Wireshark's `doc/extcap.adoc` defines them.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::Error;
use crate::capabilities::CapabilitiesArg;
use crate::capture::{Capture, Selection, Target};
use crate::sidecar::SidecarOptions;

/// The one interface: `tshark -i bpc`, and `extcap.bpc.*` preferences.
pub const INTERFACE: &str = "bpc";
/// How Wireshark lists it.
pub const INTERFACE_DISPLAY: &str = "Kubernetes workloads (kubectl bpc)";
/// Where the options are documented (the `help` of the `extcap` sentence).
pub const HELP_URL: &str =
    "https://github.com/kubectl-bpc/kubectl-bpc/blob/main/docs/guide.md#wireshark-extcap";

/// The flags of an extcap call, as Wireshark passes them. Only an extcap
/// call is parsed with this (see [`is_extcap_call`]); the options of the
/// dialog come back as `--context NAME`, `--namespace NS`, ...
#[derive(Debug, Default, Parser)]
#[command(name = "kubectl-bpc", disable_help_flag = true, disable_version_flag = true)]
pub struct ExtcapFlags {
    /// List the interfaces.
    #[arg(long)]
    extcap_interfaces: bool,
    /// Wireshark's version (with --extcap-interfaces).
    #[arg(long, value_name = "VERSION")]
    extcap_version: Option<String>,
    /// The interface a call is about.
    #[arg(long, value_name = "NAME")]
    extcap_interface: Option<String>,
    /// List the link types of --extcap-interface.
    #[arg(long)]
    extcap_dlts: bool,
    /// Describe the options of --extcap-interface.
    #[arg(long)]
    extcap_config: bool,
    /// With --extcap-config: only the values of this option (its call, with or without `--`).
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    extcap_reload_option: Option<String>,
    /// Capture into --fifo.
    #[arg(long)]
    capture: bool,
    /// The pipe Wireshark reads the pcapng from.
    #[arg(long, value_name = "PATH")]
    fifo: Option<PathBuf>,
    /// Wireshark's capture filter (alone: check it, exit 0 when valid).
    #[arg(long, value_name = "FILTER", allow_hyphen_values = true)]
    extcap_capture_filter: Option<String>,
    /// Control pipes: accepted, unused (no toolbar controls are declared).
    #[arg(long, value_name = "PATH")]
    extcap_control_in: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    extcap_control_out: Option<PathBuf>,
    /// Wireshark's debug flags: accepted, unused.
    #[arg(long)]
    debug: bool,
    #[arg(long, value_name = "PATH")]
    debug_file: Option<PathBuf>,
    #[command(flatten)]
    options: RawOptions,
}

/// The dialog's options as strings, before they are checked.
#[derive(Debug, Default, Clone, clap::Args)]
struct RawOptions {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long)]
    context: Option<String>,
    #[arg(long)]
    namespace: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    target: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    filter: Option<String>,
    #[arg(long)]
    duration: Option<String>,
    #[arg(long)]
    image: Option<String>,
}

/// One option of the `bpc` interface, in the order of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// The kubeconfig context.
    Context,
    /// The namespace.
    Namespace,
    /// What to capture.
    Target,
    /// The capture filter.
    Filter,
    /// How long.
    Duration,
    /// The agent image.
    Image,
    /// The kubeconfig file.
    Kubeconfig,
}

impl Opt {
    /// Every option, in `{number=}` order.
    pub const ALL: [Opt; 7] =
        [Opt::Context, Opt::Namespace, Opt::Target, Opt::Filter, Opt::Duration, Opt::Image, Opt::Kubeconfig];

    /// Its `{number=}`.
    pub fn number(self) -> usize {
        Opt::ALL.iter().position(|o| *o == self).unwrap_or_default()
    }

    /// Its flag without the dashes: the `extcap.bpc.NAME` preference of tshark's `-o`.
    pub fn name(self) -> &'static str {
        match self {
            Opt::Context => "context",
            Opt::Namespace => "namespace",
            Opt::Target => "target",
            Opt::Filter => "filter",
            Opt::Duration => "duration",
            Opt::Image => "image",
            Opt::Kubeconfig => "kubeconfig",
        }
    }

    /// The option `--extcap-reload-option` names (Wireshark passes the call, `--target`).
    pub fn parse(s: &str) -> Result<Opt, Error> {
        let bare = s.trim_start_matches('-');
        Opt::ALL
            .into_iter()
            .find(|o| o.name() == bare)
            .ok_or_else(|| Error::Usage(format!("the bpc interface has no option {s}")))
    }
}

/// What the user picked in the target field: a selector when it has an
/// operator (`=`, `!=`, `in`, `notin`, `!key`), else a workload or pod,
/// checked as `capture` checks its TARGET.
pub fn pick(s: &str) -> Result<Selection, Error> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::Usage("set the bpc interface's target (e.g. deploy/web, or app=web)".into()));
    }
    if s.contains(['=', '!', ' ', '(']) {
        return Ok(Selection::Selector(s.to_owned()));
    }
    Ok(Selection::Targets(vec![Target::parse(s)?]))
}

/// The connection options, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// `--kubeconfig` (else $KUBECONFIG or ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
    /// `--context` (else the current one).
    pub context: Option<String>,
    /// `--namespace` (else the context's).
    pub namespace: Option<String>,
}

/// A capture asked for: where to connect, and the capture, checked: that
/// of `kubectl bpc capture TARGET -w FIFO`, quiet but for the one line of a
/// failure (Wireshark shows an extcap's stderr as its error dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// Where to connect.
    pub cluster: Cluster,
    /// What to capture, into the pipe Wireshark reads.
    pub capture: Capture,
}

/// What Wireshark asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `--extcap-interfaces`.
    Interfaces,
    /// `--extcap-dlts`.
    Dlts,
    /// `--extcap-config`, whole or for one option.
    Config {
        /// `--extcap-reload-option`.
        reload: Option<Opt>,
        /// The other options' current values.
        cluster: Cluster,
    },
    /// `--extcap-capture-filter` without `--capture`: is the filter valid?
    CheckFilter(String),
    /// `--capture --fifo`.
    Capture(Box<CaptureRequest>),
}

/// Whether these arguments are an extcap call rather than a `kubectl bpc` command.
pub fn is_extcap_call(args: &[OsString]) -> bool {
    args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a.starts_with("--extcap-") || a == "--capture" || a.starts_with("--fifo")
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Request {
    /// Parses and checks an extcap call's arguments (the program name first).
    pub fn parse(args: &[OsString]) -> Result<Request, Error> {
        let f = ExtcapFlags::try_parse_from(args).map_err(|e| {
            let text = e.to_string();
            Error::Usage(
                text.lines().next().unwrap_or("invalid extcap call").trim_start_matches("error: ").into(),
            )
        })?;
        if f.extcap_interfaces {
            return Ok(Request::Interfaces);
        }
        match f.extcap_interface.as_deref() {
            Some(INTERFACE) => {}
            Some(other) => {
                return Err(Error::Usage(format!(
                    "no extcap interface {other}: kubectl-bpc has {INTERFACE}"
                )));
            }
            None => return Err(Error::Usage("--extcap-interface bpc is needed".into())),
        }
        let o = f.options;
        let cluster = Cluster {
            kubeconfig: o.kubeconfig,
            context: non_empty(o.context),
            namespace: non_empty(o.namespace),
        };
        if f.extcap_dlts {
            return Ok(Request::Dlts);
        }
        if f.extcap_config {
            let reload = f.extcap_reload_option.as_deref().map(Opt::parse).transpose()?;
            return Ok(Request::Config { reload, cluster });
        }
        let wireshark_filter = non_empty(f.extcap_capture_filter);
        if !f.capture {
            return match wireshark_filter {
                Some(filter) => Ok(Request::CheckFilter(filter)),
                None => Err(Error::Usage(
                    "nothing asked: give --capture, --extcap-config or --extcap-dlts".into(),
                )),
            };
        }
        let fifo = f.fifo.ok_or_else(|| Error::Usage("--capture needs --fifo".into()))?;
        let pods = pick(o.target.as_deref().unwrap_or_default())?;
        let filter = match (non_empty(o.filter), wireshark_filter) {
            (Some(a), Some(b)) if a != b => Some(format!("({a}) and ({b})")),
            (a, b) => a.or(b),
        };
        if let Some(f) = &filter {
            crate::preflight::compile_filter(f)?;
        }
        let duration = match non_empty(o.duration) {
            Some(d) => bpc_contract::duration::parse_duration(&d).map_err(Error::Usage)?,
            None => Duration::ZERO,
        };
        let agent =
            SidecarOptions { filter, image: non_empty(o.image), ..SidecarOptions::with_collectors(&[]) };
        let capture = Capture {
            pods,
            agent,
            pcapng: Some(fifo),
            duration,
            count: None,
            capabilities: CapabilitiesArg::Auto,
            id: None,
            quiet: true,
        };
        Ok(Request::Capture(Box::new(CaptureRequest { cluster, capture })))
    }
}

/// One choice of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What the extcap is called with.
    pub value: String,
    /// What the dialog shows.
    pub display: String,
    /// Selected at first.
    pub default: bool,
}

impl Choice {
    /// A choice shown as its value.
    pub fn plain(value: impl Into<String>) -> Choice {
        let value = value.into();
        Choice { display: value.clone(), value, default: false }
    }
}

/// Sentence fields end at `}`: a brace in a name would cut the sentence.
fn field(s: &str) -> String {
    s.replace('{', "(").replace('}', ")").replace(['\n', '\r'], " ")
}

/// The answer to `--extcap-interfaces`.
pub fn interfaces() -> String {
    format!(
        "extcap {{version={}}}{{help={HELP_URL}}}{{display=kubectl bpc: capture Kubernetes pods without a restart}}\n\
         interface {{value={INTERFACE}}}{{display={INTERFACE_DISPLAY}}}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The answer to `--extcap-dlts`: Ethernet (each pod's interface in the
/// pcapng declares it too).
pub fn dlts() -> String {
    "dlt {number=1}{name=EN10MB}{display=Ethernet (one interface per pod)}\n".to_owned()
}

/// The `value` sentences of one option.
pub fn values(opt: Opt, choices: &[Choice]) -> String {
    let mut out = String::new();
    for c in choices {
        let _ = write!(
            out,
            "value {{arg={}}}{{value={}}}{{display={}}}",
            opt.number(),
            field(&c.value),
            field(&c.display)
        );
        if c.default {
            out.push_str("{default=true}");
        }
        out.push('\n');
    }
    out
}

/// The answer to `--extcap-config`: every option, then the values known
/// without asking the cluster (contexts and namespaces of the kubeconfig);
/// namespaces and targets from the cluster come with each option's reload.
pub fn config(contexts: &[Choice], namespaces: &[Choice]) -> String {
    let image = crate::sidecar::default_image();
    let args = [
        (
            Opt::Context,
            "Context",
            "{type=selector}",
            "The kubeconfig context (cluster and user) to capture in".to_owned(),
            "Cluster",
        ),
        (
            Opt::Namespace,
            "Namespace",
            "{type=selector}{reload=true}{placeholder=Namespaces of the cluster}{required=true}",
            "The namespace of the pods; reload lists the cluster's namespaces".to_owned(),
            "Cluster",
        ),
        (
            Opt::Target,
            "Target",
            "{type=selector}{reload=true}{placeholder=Workloads of the namespace}{required=true}",
            "pod/NAME, deploy/NAME, sts/NAME, ds/NAME, or a label selector (app=web); reload lists the \
             namespace's workloads"
                .to_owned(),
            "Cluster",
        ),
        (
            Opt::Filter,
            "Capture filter",
            "{type=string}",
            "BPF filter run in each pod (tcp port 8080); Wireshark's capture filter is applied as well"
                .to_owned(),
            "Capture",
        ),
        (
            Opt::Duration,
            "Duration",
            "{type=string}{default=0}{validation=^[0-9]+(ms|s|m|h)?$}",
            "How long the agents capture (30s, 5m); 0: until the capture is stopped".to_owned(),
            "Capture",
        ),
        (
            Opt::Image,
            "Agent image",
            "{type=string}",
            format!("The bpc-agent image of the capture containers [default: {image}]"),
            "Capture",
        ),
        (
            Opt::Kubeconfig,
            "Kubeconfig",
            "{type=fileselect}{mustexist=true}",
            "The kubeconfig file [default: $KUBECONFIG, ~/.kube/config]".to_owned(),
            "Cluster",
        ),
    ];
    let mut out = String::new();
    for (opt, display, kind, tooltip, group) in args {
        let _ = writeln!(
            out,
            "arg {{number={}}}{{call=--{}}}{{display={display}}}{kind}{{tooltip={}}}{{group={group}}}",
            opt.number(),
            opt.name(),
            field(&tooltip)
        );
    }
    out.push_str(&values(Opt::Context, contexts));
    out.push_str(&values(Opt::Namespace, namespaces));
    out
}

/// An error as Wireshark shows it: one line on stderr.
pub fn error_line(e: &Error) -> String {
    let text = e.to_string();
    let one: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    format!("kubectl-bpc: {}", one.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{WorkloadKind, WorkloadRef};

    fn parse(args: &[&str]) -> Result<Request, Error> {
        let argv: Vec<OsString> =
            std::iter::once("kubectl-bpc").chain(args.iter().copied()).map(Into::into).collect();
        assert!(is_extcap_call(&argv), "{args:?} is an extcap call");
        Request::parse(&argv)
    }

    /// Compares with `testdata/extcap/NAME` (`UPDATE_GOLDEN=1` rewrites it).
    fn golden(name: &str, got: &str) {
        let path = format!("{}/../testdata/extcap/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_GOLDEN=1 writes it)"));
        assert_eq!(got, want, "{path} differs (UPDATE_GOLDEN=1 rewrites it; review the diff)");
    }

    #[test]
    fn the_interface_list_and_link_types_match_their_goldens() {
        let got = interfaces().replace(env!("CARGO_PKG_VERSION"), "VERSION");
        golden("interfaces.txt", &got);
        golden("dlts.txt", &dlts());
        assert_eq!(parse(&["--extcap-interfaces", "--extcap-version=4.0"]).unwrap(), Request::Interfaces);
        assert_eq!(parse(&["--extcap-interface", "bpc", "--extcap-dlts"]).unwrap(), Request::Dlts);
    }

    #[test]
    fn the_config_lists_every_option_and_the_kubeconfigs_contexts_and_namespaces_matching_its_golden() {
        let contexts = [
            Choice { value: "prod".into(), display: "prod (current)".into(), default: true },
            Choice::plain("staging"),
        ];
        let namespaces = [Choice { value: "shop".into(), display: "shop".into(), default: true }];
        let got = config(&contexts, &namespaces).replace(&crate::sidecar::default_image(), "IMAGE");
        golden("config.txt", &got);
        for line in got.lines() {
            assert!(line.starts_with("arg {number=") || line.starts_with("value {arg="), "{line}");
        }
    }

    #[test]
    fn a_reload_answers_only_the_values_of_its_option_whatever_form_wireshark_names_it_in() {
        for name in ["--target", "target"] {
            let r = parse(&[
                "--extcap-config",
                "--extcap-interface",
                "bpc",
                "--extcap-reload-option",
                name,
                "--namespace",
                "shop",
                "--context",
                "prod",
            ])
            .unwrap();
            let cluster =
                Cluster { kubeconfig: None, context: Some("prod".into()), namespace: Some("shop".into()) };
            assert_eq!(r, Request::Config { reload: Some(Opt::Target), cluster });
        }
        let got = values(
            Opt::Target,
            &[
                Choice {
                    value: "deploy/web".into(),
                    display: "deploy/web (2 running)".into(),
                    default: false,
                },
                Choice::plain("sts/db{0}"),
            ],
        );
        golden("reload-target.txt", &got);
        assert!(
            parse(&["--extcap-config", "--extcap-interface", "bpc", "--extcap-reload-option", "--nope"])
                .is_err()
        );
    }

    #[test]
    fn a_capture_call_becomes_a_checked_request_with_both_filters_applied() {
        let r = parse(&[
            "--capture",
            "--extcap-interface",
            "bpc",
            "--fifo",
            "/tmp/wireshark_extcap_bpc_1",
            "--namespace",
            "shop",
            "--target",
            "deploy/web",
            "--filter",
            "tcp port 8080",
            "--extcap-capture-filter",
            "host 198.19.0.5",
            "--duration",
            "30s",
        ])
        .unwrap();
        let Request::Capture(c) = r else { panic!("{r:?}") };
        let web = WorkloadRef { kind: Some(WorkloadKind::Deployment), name: "web".into() };
        assert_eq!(c.capture.pods, Selection::Targets(vec![Target::Workload(web)]));
        assert_eq!(c.capture.agent.filter.as_deref(), Some("(tcp port 8080) and (host 198.19.0.5)"));
        assert_eq!(c.capture.duration, Duration::from_secs(30));
        assert_eq!(c.capture.pcapng.as_deref(), Some(std::path::Path::new("/tmp/wireshark_extcap_bpc_1")));
        assert!(c.capture.quiet && c.capture.agent.collectors.is_empty(), "pcapng into the fifo, quietly");
        assert_eq!(c.cluster.namespace.as_deref(), Some("shop"));
        let r =
            parse(&["--capture", "--extcap-interface", "bpc", "--fifo", "f", "--target", "app=web"]).unwrap();
        assert!(
            matches!(r, Request::Capture(c) if c.capture.pods == Selection::Selector("app=web".into()) && c.capture.duration.is_zero())
        );
    }

    #[test]
    fn a_bad_call_is_refused_in_one_line_naming_what_to_set() {
        let no_target = parse(&["--capture", "--extcap-interface", "bpc", "--fifo", "f"]).unwrap_err();
        assert_eq!(
            error_line(&no_target),
            "kubectl-bpc: set the bpc interface's target (e.g. deploy/web, or app=web)"
        );
        let bad_filter = parse(&[
            "--capture",
            "--extcap-interface",
            "bpc",
            "--fifo",
            "f",
            "--target",
            "web",
            "--filter",
            "tcp prot 80",
        ])
        .unwrap_err();
        assert!(!error_line(&bad_filter).contains('\n'), "{bad_filter}");
        assert!(
            parse(&["--capture", "--extcap-interface", "eth0", "--fifo", "f"])
                .unwrap_err()
                .to_string()
                .contains("no extcap interface eth0")
        );
        assert!(
            matches!(parse(&["--extcap-interface", "bpc", "--extcap-capture-filter", "tcp"]).unwrap(), Request::CheckFilter(f) if f == "tcp")
        );
        assert!(
            parse(&["--capture", "--extcap-interface", "bpc", "--fifo", "f", "--target", "rs/x"]).is_err()
        );
    }

    #[test]
    fn kubectl_bpc_commands_are_not_extcap_calls() {
        let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(!is_extcap_call(&argv(&["kubectl-bpc", "capture", "deploy/web", "-w", "-"])));
        assert!(!is_extcap_call(&argv(&["kubectl-bpc", "extcap", "install"])));
    }
}
