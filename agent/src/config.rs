//! Flags, environment variables and the validated configuration they make.
//!
//! Every flag can also be set by the environment variable the CLI writes into
//! the sidecar (`BPC_*`, named in [`bpc_contract::env`]), plus the Downward API
//! variables `POD_NAME`, `POD_NAMESPACE`, `POD_IP` and `NODE_NAME`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bpc_contract::defaults::{
    DEFAULT_BUFFER_MIB, DEFAULT_METRICS_PORT, MAX_BUFFER_MIB, MAX_COLLECTORS, MIN_BUFFER_MIB,
};
use bpc_contract::duration::{parse_batch, parse_duration};
use bpc_contract::env;
pub use bpc_contract::{Encap, OnError, Oversize as OversizeMode, SendPath};
use bpc_wire::{GreProfile, NetisKey, WorkloadKey, ethernet};
use clap::Parser;

use crate::error::{Error, Result};

/// What the capture keeps of each frame when `--snaplen` is not given.
pub const CAPTURE_SNAPLEN: usize = bpc_contract::defaults::SNAPLEN as usize;

/// Command line of `bpc-agent`.
#[derive(Debug, Parser)]
#[command(
    name = "bpc-agent",
    version,
    about = "Capture sidecar: captures its pod's traffic and streams it GRE-encapsulated to collectors",
    after_help = "Exit codes: 0 clean stop (SIGTERM/SIGINT, --duration, --count, stdin closed with \
                  --stdin-control), 2 configuration or permission error, \
                  1 other runtime failure."
)]
pub struct Args {
    /// Collector to stream to: IPv4/IPv6 address or DNS name; repeat or comma-separate, up to 4.
    #[arg(long = "collector", env = env::COLLECTOR, value_name = "HOST", value_delimiter = ',')]
    pub collectors: Vec<String>,

    /// Interface to capture on [default: the interface of the default route, e.g. eth0].
    #[arg(long, env = env::INTERFACE, value_name = "IFACE")]
    pub interface: Option<String>,

    /// Capture filter in tcpdump syntax; the agent's own GRE and metrics traffic are always excluded.
    #[arg(long, env = env::FILTER, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Bytes kept of each sent frame (after segmentation) [default: all of it].
    #[arg(long, env = env::SNAPLEN, value_name = "N")]
    pub snaplen: Option<usize>,

    /// GRE key: a number (decimal or 0x-hex) or "auto" (from BPC_WORKLOAD, else the pod name).
    #[arg(long, env = env::KEY, value_name = "N|auto", default_value = "auto")]
    pub key: String,

    /// Workload this pod belongs to, "namespace/kind/name" (set by kubectl bpc attach).
    #[arg(long, env = env::WORKLOAD, value_name = "NS/KIND/NAME")]
    pub workload: Option<String>,

    /// Most packets per second to capture; the excess is dropped and counted (0: no cap).
    #[arg(long, env = env::MAX_PPS, value_name = "N")]
    pub max_pps: Option<u64>,

    /// Most megabits per second to capture; the excess is dropped and counted (0: no cap).
    #[arg(long, env = env::MAX_MBPS, value_name = "N")]
    pub max_mbps: Option<f64>,

    /// Address of the /metrics, /stats and /healthz endpoint.
    #[arg(long, env = env::METRICS_ADDR, value_name = "ADDR",
          default_value_t = format!("0.0.0.0:{DEFAULT_METRICS_PORT}"))]
    pub metrics_addr: String,

    /// Serve the endpoint on loopback only (127.0.0.1 or ::1, the port of --metrics-addr):
    /// nothing outside the pod can read the counters; probe with --check-health.
    #[arg(long, env = env::METRICS_PRIVATE)]
    pub metrics_private: bool,

    /// GET /livez (the capture loop runs) on the agent's own endpoint (the port of
    /// --metrics-addr, on loopback when it listens on all addresses) and exit 0 if
    /// alive, 1 if not: an exec liveness probe.
    #[arg(long)]
    pub check_health: bool,

    /// GET /startupz on the agent's own endpoint (as --check-health) and exit 0 once capture
    /// is live, has failed for good, or the startup bound has passed: an exec startup probe.
    #[arg(long)]
    pub check_startup: bool,

    /// When capture cannot start or fails: exit with its status, or serve the reason on
    /// /healthz and /stats (with /livez and /startupz passing) until stopped, as sidecars do,
    /// so that capture never keeps the app from starting or its pod from being Ready.
    #[arg(long, env = env::ON_ERROR, value_enum, default_value_t = OnError::Exit)]
    pub on_error: OnError,

    /// After SIGTERM, keep capturing up to this long while the pod still has traffic (stops
    /// after 1 s without a packet): the app's shutdown, when it gets SIGTERM with the agent.
    #[arg(long, env = env::LINGER, value_name = "DURATION", default_value = "0s",
          value_parser = parse_duration)]
    pub linger: Duration,

    /// Let frames gather up to this long and leave in batches (2ms to 1s; 0: off, the
    /// default): far fewer wake-ups, so less CPU at low and middling rates, for a collector
    /// that does not time transactions (an IDS, an archive). A frame then reaches the
    /// collector up to about twice DURATION late, and response times measured there lose that
    /// much accuracy. Off, each frame leaves as it is captured (at most 1 ms late when busy).
    #[arg(long, env = env::BATCH, value_name = "DURATION", default_value = "0", value_parser = parse_batch)]
    pub batch: Duration,

    /// Capture ring size in MiB: longer scheduling stalls ridden out for more memory
    /// (24 MiB: about 190 ms at any rate up to ~100 MB/s).
    #[arg(long, env = env::BUFFER, value_name = "MIB", default_value_t = DEFAULT_BUFFER_MIB)]
    pub buffer: u32,

    /// What to do with frames too big for one GRE packet (GSO/GRO super-frames).
    #[arg(long, env = env::OVERSIZE, value_enum, default_value_t = OversizeMode::Segment)]
    pub oversize: OversizeMode,

    /// How GRE packets leave: "auto" (an AF_PACKET TX ring for IPv4 collectors
    /// once their next hop is resolved, else the raw socket) or "raw" (always
    /// the raw GRE socket, e.g. where policy routing must be followed).
    #[arg(long, env = env::SEND_PATH, value_enum, default_value_t = SendPath::Auto)]
    pub send_path: SendPath,

    /// GRE header layout: "standard" (key + sequence) or "netis" (pktminerg: key with direction bits).
    #[arg(long, env = env::GRE_PROFILE, value_name = "PROFILE", value_enum, ignore_case = true,
          default_value_t = bpc_contract::GreProfile::Standard)]
    pub gre_profile: bpc_contract::GreProfile,

    /// The format frames travel in: "gre" (with --gre-profile), "vxlan" (UDP, --vxlan-port),
    /// "erspan-ii" or "erspan-iii" (GRE 0x88BE / 0x22EB).
    #[arg(long, env = env::ENCAP, value_enum, ignore_case = true, default_value_t = Encap::Gre)]
    pub encap: Encap,

    /// VXLAN network identifier (24 bits) [default: the low 24 bits of the key].
    #[arg(long, env = env::VNI, value_name = "N")]
    pub vni: Option<u32>,

    /// ERSPAN session ID (10 bits) [default: the low 10 bits of the key].
    #[arg(long, env = env::SESSION, value_name = "N")]
    pub session: Option<u16>,

    /// The collectors' VXLAN UDP port.
    #[arg(long, env = env::VXLAN_PORT, value_name = "PORT", default_value_t = bpc_wire::vxlan::PORT)]
    pub vxlan_port: u16,

    /// How often DNS collector names are resolved again (e.g. 30s, 500ms, 2m).
    #[arg(long, env = env::RESOLVE_INTERVAL, value_name = "DURATION", default_value = "30s",
          value_parser = parse_duration)]
    pub resolve_interval: Duration,

    /// Write the capture as pcapng to FILE ("-": stdout) instead of streaming GRE; no collector
    /// is needed, and /stats is still served.
    #[arg(long, short = 'w', env = env::WRITE, value_name = "FILE|-")]
    pub write: Option<String>,

    /// Stop after this long (e.g. 60, 60s, 500ms, 2m), exit 0 with everything flushed.
    #[arg(long, env = env::DURATION, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many captured packets, exit 0 with everything flushed.
    #[arg(long, env = env::COUNT, value_name = "N")]
    pub count: Option<u64>,

    /// Start capturing at the first byte on stdin and stop when stdin closes or sends another
    /// byte: `kubectl bpc capture` attaches before the first pcapng byte is written (output
    /// written before an attach is lost) and stops the agent by detaching.
    #[arg(long, env = env::STDIN_CONTROL, hide = true)]
    pub stdin_control: bool,

    /// Print the interfaces the agent can see, and which one it would capture on, then exit.
    #[arg(long)]
    pub list_interfaces: bool,

    /// Pod name (Downward API).
    #[arg(long, env = env::POD_NAME, hide = true)]
    pub pod_name: Option<String>,

    /// Pod namespace (Downward API).
    #[arg(long, env = env::POD_NAMESPACE, hide = true)]
    pub pod_namespace: Option<String>,

    /// Pod IP (Downward API).
    #[arg(long, env = env::POD_IP, hide = true)]
    pub pod_ip: Option<String>,

    /// Node name (Downward API).
    #[arg(long, env = "NODE_NAME", hide = true)]
    pub node_name: Option<String>,
}

/// One `--collector` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSpec {
    /// The host as the user wrote it (brackets of an IPv6 literal removed).
    pub host: String,
    /// Set when `host` is an IP literal: it is never resolved again.
    pub literal: Option<IpAddr>,
}

impl FromStr for CollectorSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let host = s.trim();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(Error::Config("empty --collector (BPC_COLLECTOR) entry".into()));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(CollectorSpec { host: host.to_owned(), literal: Some(ip) });
        }
        let valid_name = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid_name {
            return Err(Error::Config(format!(
                "--collector (BPC_COLLECTOR) {s:?} is neither an IP address nor a DNS name \
                 (GRE has no port: give the host only)"
            )));
        }
        Ok(CollectorSpec { host: host.to_owned(), literal: None })
    }
}

/// The GRE key the agent sends and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChoice {
    /// Standard profile: the full key; netis profile: the 28-bit keybit.
    pub key: u32,
    /// The workload ("namespace/kind/name") the key stands for, when known.
    pub workload: Option<String>,
    /// Human explanation for the startup log.
    pub source: String,
}

/// Facts about the pod, from the Downward API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod name (`POD_NAME`, else the hostname, which Kubernetes sets to it).
    pub name: Option<String>,
    /// Pod namespace (`POD_NAMESPACE`).
    pub namespace: Option<String>,
    /// Pod IP (`POD_IP`).
    pub ip: Option<String>,
    /// Node name (`NODE_NAME`).
    pub node: Option<String>,
}

/// Validated configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Collectors, in the order given.
    pub collectors: Vec<CollectorSpec>,
    /// Capture interface; `None`: find the default-route interface.
    pub interface: Option<String>,
    /// The user's filter (without the self-exclusion), `None` for everything.
    pub filter: Option<String>,
    /// Bytes kept of each sent frame.
    pub snaplen: Option<usize>,
    /// The GRE key.
    pub key: KeyChoice,
    /// Packets per second cap.
    pub max_pps: Option<u64>,
    /// Bytes per second cap (from `--max-mbps`).
    pub max_bytes_per_sec: Option<f64>,
    /// Metrics endpoint address (loopback in private mode).
    pub metrics_addr: SocketAddr,
    /// Whether `--metrics-private` put the endpoint on loopback.
    pub metrics_private: bool,
    /// Capture ring size in MiB.
    pub buffer_mib: u32,
    /// Oversize frame handling.
    pub oversize: OversizeMode,
    /// Send path.
    pub send_path: SendPath,
    /// GRE header layout, as the codec (the flag takes the contract's name).
    pub profile: bpc_wire::GreProfile,
    /// The format frames travel in.
    pub encap: Encap,
    /// VXLAN: the VNI (from `--vni`, else the key's).
    pub vni: u32,
    /// ERSPAN: the session ID (from `--session`, else the key's).
    pub session: u16,
    /// VXLAN: the collectors' UDP port.
    pub vxlan_port: u16,
    /// DNS re-resolution period.
    pub resolve_interval: Duration,
    /// Downward API facts.
    pub pod: PodInfo,
    /// `--write`: where pcapng goes instead of GRE; `None`: stream to the collectors.
    pub write: Option<WriteTarget>,
    /// `--duration`: stop after this long.
    pub duration: Option<Duration>,
    /// `--count`: stop after this many packets.
    pub count: Option<u64>,
    /// `--stdin-control`: start on a byte on stdin, stop on its close.
    pub stdin_control: bool,
    /// `--on-error`: exit, or serve the reason until stopped.
    pub on_error: OnError,
    /// `--linger`: capture after SIGTERM while the pod has traffic, at most this long.
    pub linger: Duration,
    /// `--batch`: how long frames may gather before they leave; `None`: as soon as captured.
    pub batch: Option<Duration>,
}

/// Where `--write` puts the pcapng.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    /// `-`: standard output.
    Stdout,
    /// A file, created or truncated.
    File(std::path::PathBuf),
}

/// Treats an empty value (an env var set to "") like an absent one.
fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Config {
    /// Validates `args`; `hostname` stands in for the pod name when `POD_NAME` is unset.
    pub fn from_args(args: Args, hostname: Option<String>) -> Result<Config> {
        let mut collectors = Vec::new();
        for c in args.collectors.iter().filter(|c| !c.trim().is_empty()) {
            let spec: CollectorSpec = c.parse()?;
            if !collectors.contains(&spec) {
                collectors.push(spec);
            }
        }
        let write = match non_empty(args.write) {
            None => None,
            Some(w) if w == "-" => Some(WriteTarget::Stdout),
            Some(w) => Some(WriteTarget::File(w.into())),
        };
        if write.is_some() && !collectors.is_empty() {
            return Err(Error::Config(
                "--write (BPC_WRITE) and --collector (BPC_COLLECTOR) exclude each other: the capture \
                 goes either to a pcapng file/stdout or to GRE collectors"
                    .into(),
            ));
        }
        if args.count == Some(0) {
            return Err(Error::Config("--count (BPC_COUNT) must be above 0".into()));
        }
        if args.duration.is_some_and(|d| d.is_zero()) {
            return Err(Error::Config("--duration (BPC_DURATION) must be above 0".into()));
        }
        if collectors.is_empty() && write.is_none() {
            return Err(Error::Config(
                "no collector: set --collector HOST or BPC_COLLECTOR (IP address or DNS name of the GRE \
                 receiver; comma-separated, up to 4), or --write FILE|- for pcapng"
                    .into(),
            ));
        }
        if collectors.len() > MAX_COLLECTORS {
            return Err(Error::Config(format!(
                "{} collectors given, at most {MAX_COLLECTORS} are supported (--collector / BPC_COLLECTOR)",
                collectors.len()
            )));
        }
        let snaplen = match args.snaplen {
            Some(0) | None => None,
            Some(n) if n < ethernet::HEADER_LEN => {
                return Err(Error::Config(format!(
                    "--snaplen (BPC_SNAPLEN) {n} is below the {}-byte Ethernet header",
                    ethernet::HEADER_LEN
                )));
            }
            Some(n) => Some(n.min(CAPTURE_SNAPLEN)),
        };
        let max_bytes_per_sec = match args.max_mbps {
            Some(m) if !m.is_finite() || m < 0.0 => {
                return Err(Error::Config(format!(
                    "--max-mbps (BPC_MAX_MBPS) {m} must be a positive number"
                )));
            }
            Some(m) if m > 0.0 => Some(m * 1e6 / 8.0),
            _ => None,
        };
        let mut metrics_addr = parse_metrics_addr(&args.metrics_addr)?;
        if args.metrics_private {
            metrics_addr = private_metrics_addr(metrics_addr)?;
        }
        if !(MIN_BUFFER_MIB..=MAX_BUFFER_MIB).contains(&args.buffer) {
            return Err(Error::Config(format!(
                "--buffer (BPC_BUFFER) {} MiB is outside {MIN_BUFFER_MIB}..={MAX_BUFFER_MIB}: give the capture \
                 ring size in MiB (default {DEFAULT_BUFFER_MIB})",
                args.buffer
            )));
        }
        if args.resolve_interval.is_zero() {
            return Err(Error::Config("--resolve-interval (BPC_RESOLVE_INTERVAL) must be above 0".into()));
        }
        let pod = PodInfo {
            name: non_empty(args.pod_name).or(non_empty(hostname.clone())),
            namespace: non_empty(args.pod_namespace),
            ip: non_empty(args.pod_ip),
            node: non_empty(args.node_name),
        };
        let profile = GreProfile::from(args.gre_profile);
        if profile == GreProfile::Netis && args.encap != Encap::Gre {
            return Err(Error::Config(format!(
                "--gre-profile (BPC_GRE_PROFILE) netis is a GRE profile: it does not combine with --encap \
                 (BPC_ENCAP) {}",
                args.encap
            )));
        }
        if args.vni.is_some_and(|v| v > bpc_wire::vxlan::MAX_VNI) {
            return Err(Error::Config(format!(
                "--vni (BPC_VNI) {} does not fit VXLAN's 24 bits (at most {})",
                args.vni.unwrap_or_default(),
                bpc_wire::vxlan::MAX_VNI
            )));
        }
        if args.session.is_some_and(|s| s > bpc_wire::erspan::MAX_SESSION) {
            return Err(Error::Config(format!(
                "--session (BPC_SESSION) {} does not fit ERSPAN's 10-bit session ID (at most {})",
                args.session.unwrap_or_default(),
                bpc_wire::erspan::MAX_SESSION
            )));
        }
        if args.vxlan_port == 0 {
            return Err(Error::Config("--vxlan-port (BPC_VXLAN_PORT) must be above 0".into()));
        }
        let key = choose_key(&args.key, non_empty(args.workload).as_deref(), &pod, hostname, profile)?;
        let vni = args.vni.unwrap_or(bpc_wire::vxlan::vni_of(WorkloadKey(key.key)));
        let session = args.session.unwrap_or(bpc_wire::erspan::session_of(WorkloadKey(key.key)));
        Ok(Config {
            encap: args.encap,
            vni,
            session,
            vxlan_port: args.vxlan_port,
            collectors,
            interface: non_empty(args.interface),
            filter: non_empty(args.filter),
            snaplen,
            key,
            max_pps: args.max_pps.filter(|&p| p > 0),
            max_bytes_per_sec,
            metrics_addr,
            metrics_private: args.metrics_private,
            buffer_mib: args.buffer,
            oversize: args.oversize,
            send_path: args.send_path,
            profile,
            resolve_interval: args.resolve_interval,
            pod,
            write,
            duration: args.duration,
            count: args.count,
            stdin_control: args.stdin_control,
            on_error: args.on_error,
            linger: args.linger,
            batch: Some(args.batch).filter(|b| !b.is_zero()),
        })
    }
}

/// Parses `--metrics-addr`: `host:port`, `[v6]:port` or `:port` (all addresses).
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr> {
    let s = s.trim();
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|_| {
        Error::Config(format!(
            "--metrics-addr (BPC_METRICS_ADDR) {s:?} is not ADDRESS:PORT (e.g. 0.0.0.0:9469)"
        ))
    })
}

/// The loopback address `--metrics-private` binds: the unspecified address
/// becomes loopback of its family; an explicit non-loopback address
/// contradicts private mode.
pub fn private_metrics_addr(addr: SocketAddr) -> Result<SocketAddr> {
    match addr.ip() {
        ip if ip.is_loopback() => Ok(addr),
        IpAddr::V4(ip) if ip.is_unspecified() => Ok((std::net::Ipv4Addr::LOCALHOST, addr.port()).into()),
        IpAddr::V6(ip) if ip.is_unspecified() => Ok((std::net::Ipv6Addr::LOCALHOST, addr.port()).into()),
        _ => Err(Error::Config(format!(
            "--metrics-private (BPC_METRICS_PRIVATE) serves on loopback only, but --metrics-addr \
             (BPC_METRICS_ADDR) is {addr}: give :PORT or 127.0.0.1:PORT, or drop --metrics-private"
        ))),
    }
}

/// Decides the GRE key (`--key`), in the order the spec gives: an explicit
/// number, else `BPC_WORKLOAD`, else the pod's namespace and name, else the hostname.
pub fn choose_key(
    key: &str,
    workload: Option<&str>,
    pod: &PodInfo,
    hostname: Option<String>,
    profile: GreProfile,
) -> Result<KeyChoice> {
    let key = key.trim();
    let workload_key = match workload {
        Some(w) => Some(WorkloadKey::from_workload_path(w).map(|k| (k, w.to_owned())).ok_or_else(|| {
            Error::Config(format!(
                "BPC_WORKLOAD (--workload) {w:?} is not \"namespace/kind/name\" (e.g. shop/deployment/checkout)"
            ))
        })?),
        None => None,
    };
    let mut choice = if key.is_empty() || key.eq_ignore_ascii_case("auto") {
        if let Some((k, w)) = workload_key {
            KeyChoice { key: k.get(), source: format!("from workload {w} (BPC_WORKLOAD)"), workload: Some(w) }
        } else if let (Some(ns), Some(name)) = (&pod.namespace, &pod.name) {
            let (kind, workload) = WorkloadKey::guess_workload_of_pod(name);
            let path = format!("{ns}/{kind}/{workload}");
            KeyChoice {
                key: WorkloadKey::from_workload(ns, kind, workload).get(),
                source: format!(
                    "from workload {path}, guessed from pod {ns}/{name} (set BPC_WORKLOAD to be sure)"
                ),
                workload: Some(path),
            }
        } else {
            let host = hostname.unwrap_or_else(|| "localhost".to_owned());
            KeyChoice {
                key: WorkloadKey::from_workload("", "host", &host).get(),
                source: format!("from hostname {host:?} (no BPC_WORKLOAD, no POD_NAMESPACE)"),
                workload: None,
            }
        }
    } else {
        let k: WorkloadKey = key.parse().map_err(|_| {
            Error::Config(format!(
                "--key (BPC_KEY) {key:?} is neither \"auto\" nor a number (decimal or 0x-hex, below 2^32)"
            ))
        })?;
        if profile == GreProfile::Netis && k.get() > NetisKey::MAX_KEYBIT {
            return Err(Error::Config(format!(
                "--key (BPC_KEY) {key} does not fit the netis profile's 28-bit keybit (at most {:#x}): \
                 the top 4 bits carry the direction",
                NetisKey::MAX_KEYBIT
            )));
        }
        KeyChoice {
            key: k.get(),
            source: "from --key (BPC_KEY)".to_owned(),
            workload: workload_key.map(|(_, w)| w),
        }
    };
    let sent = WorkloadKey(choice.key).as_sent(profile).get();
    if sent != choice.key {
        choice.key = sent;
        choice.source.push_str(", low 28 bits as netis keybit");
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("bpc-agent").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> Result<Config> {
        Config::from_args(parse(args).expect("clap accepts"), Some("host-1".into()))
    }

    #[test]
    fn collectors_split_on_commas_and_repeat_and_ipv6_brackets_are_removed() {
        let c = config(&["--collector", "198.18.0.2,col.mon.svc", "--collector", "[2001:db8::1]"]).unwrap();
        let hosts: Vec<_> = c.collectors.iter().map(|c| c.host.as_str()).collect();
        assert_eq!(hosts, ["198.18.0.2", "col.mon.svc", "2001:db8::1"]);
        assert_eq!(c.collectors[0].literal, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(c.collectors[1].literal, None);
        assert!(c.collectors[2].literal.is_some());
    }

    #[test]
    fn more_than_four_collectors_or_none_is_a_configuration_error() {
        let e =
            config(&["--collector", "198.18.0.1,198.18.0.2,198.18.0.3,198.18.0.4,198.18.0.5"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("at most 4"), "{e}");
        let e = config(&[]).unwrap_err();
        assert!(e.to_string().contains("BPC_COLLECTOR"), "{e}");
    }

    #[test]
    fn collector_with_a_port_is_rejected_with_a_reason() {
        let e = config(&["--collector", "col.svc:4789"]).unwrap_err();
        assert!(e.to_string().contains("GRE has no port"), "{e}");
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&["--collector", "198.18.0.2"]).unwrap();
        assert_eq!(c.metrics_addr, "0.0.0.0:9469".parse().unwrap());
        assert_eq!(c.oversize, OversizeMode::Segment);
        assert_eq!(c.send_path, SendPath::Auto);
        assert_eq!(c.profile, GreProfile::Standard);
        assert_eq!(c.resolve_interval, Duration::from_secs(30));
        assert_eq!(
            (c.snaplen, c.max_pps, c.max_bytes_per_sec, c.filter.as_deref()),
            (None, None, None, None)
        );
    }

    #[test]
    fn flags_parse_units_and_convert_mbps_to_bytes() {
        let c = config(&[
            "--collector=198.18.0.2",
            "--max-mbps=8",
            "--max-pps=100",
            "--snaplen=128",
            "--resolve-interval=500ms",
            "--metrics-addr=:9999",
            "--oversize=truncate",
            "--send-path=raw",
            "--gre-profile=netis",
            "--key=0x10",
        ])
        .unwrap();
        assert_eq!(c.max_bytes_per_sec, Some(1_000_000.0));
        assert_eq!(c.max_pps, Some(100));
        assert_eq!(c.snaplen, Some(128));
        assert_eq!(c.resolve_interval, Duration::from_millis(500));
        assert_eq!(c.metrics_addr, "0.0.0.0:9999".parse().unwrap());
        assert_eq!(c.oversize, OversizeMode::Truncate);
        assert_eq!(c.send_path, SendPath::Raw);
        assert_eq!(c.profile, GreProfile::Netis);
        assert_eq!(c.key.key, 0x10);
    }

    #[test]
    fn encap_defaults_to_gre_and_vni_and_session_come_from_the_key_unless_given() {
        let c = config(&["--collector=198.18.0.2", "--key=0x773f9626"]).unwrap();
        assert_eq!((c.encap, c.vni, c.session, c.vxlan_port), (Encap::Gre, 0x3f9626, 0x226, 4789));
        let c = config(&["--collector=198.18.0.2", "--encap=erspan-iii", "--session=5", "--vni=7"]).unwrap();
        assert_eq!((c.encap, c.vni, c.session), (Encap::ErspanIii, 7, 5));
        let c = config(&["--collector=198.18.0.2", "--encap=VXLAN", "--vxlan-port=8472"]).unwrap();
        assert_eq!((c.encap, c.vxlan_port), (Encap::Vxlan, 8472));
    }

    #[test]
    fn netis_with_another_encap_and_out_of_range_vni_or_session_are_configuration_errors() {
        for args in [
            &["--collector=198.18.0.2", "--encap=vxlan", "--gre-profile=netis"][..],
            &["--collector=198.18.0.2", "--encap=vxlan", "--vni=16777216"],
            &["--collector=198.18.0.2", "--encap=erspan-ii", "--session=1024"],
            &["--collector=198.18.0.2", "--encap=vxlan", "--vxlan-port=0"],
        ] {
            let e = config(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        assert!(parse(&["--collector=198.18.0.2", "--encap=nvgre"]).is_err());
    }

    #[test]
    fn unknown_oversize_and_profile_values_are_rejected_by_the_parser() {
        assert!(parse(&["--collector=198.18.0.2", "--oversize=drop"]).is_err());
        let e = parse(&["--collector=198.18.0.2", "--gre-profile=erspan"]).unwrap_err();
        assert!(e.to_string().contains("netis"), "{e}");
        // clap exits 2 for usage errors, as the contract wants for configuration errors.
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn batch_reaches_the_config_off_when_zero_and_refused_out_of_range() {
        let c = |extra: &[&str]| config(&[&["--collector=198.18.0.2"], extra].concat()).unwrap().batch;
        assert_eq!(c(&[]), None);
        assert_eq!(c(&["--batch", "0"]), None);
        assert_eq!(c(&["--batch", "250ms"]), Some(Duration::from_millis(250)));
        let e = parse(&["--collector=198.18.0.2", "--batch", "5s"]).unwrap_err();
        assert!(e.to_string().contains("outside 2ms..1s"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn metrics_private_binds_loopback_on_the_given_port_and_refuses_a_routable_address() {
        let c =
            config(&["--collector=198.18.0.2", "--metrics-private", "--metrics-addr=0.0.0.0:9500"]).unwrap();
        assert_eq!((c.metrics_addr, c.metrics_private), ("127.0.0.1:9500".parse().unwrap(), true));
        let c = config(&["--collector=198.18.0.2", "--metrics-private", "--metrics-addr=[::]:9469"]).unwrap();
        assert_eq!(c.metrics_addr, "[::1]:9469".parse().unwrap());
        let c = config(&["--collector=198.18.0.2"]).unwrap();
        assert!(!c.metrics_private && c.metrics_addr.ip().is_unspecified());
        let e = config(&["--collector=198.18.0.2", "--metrics-private", "--metrics-addr=198.18.0.1:9469"])
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("BPC_METRICS_PRIVATE"), "{e}");
    }

    #[test]
    fn buffer_defaults_to_24_mib_and_out_of_range_sizes_name_the_flag() {
        assert_eq!(config(&["--collector=198.18.0.2"]).unwrap().buffer_mib, 24);
        assert_eq!(config(&["--collector=198.18.0.2", "--buffer=64"]).unwrap().buffer_mib, 64);
        for bad in ["0", "1", "1025"] {
            let e = config(&["--collector=198.18.0.2", &format!("--buffer={bad}")]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("--buffer (BPC_BUFFER)"), "{e}");
        }
        // Not a number at all: clap's usage error, also exit 2.
        assert_eq!(parse(&["--collector=198.18.0.2", "--buffer=lots"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn bad_metrics_addr_is_a_configuration_error() {
        let e = config(&["--collector=198.18.0.2", "--metrics-addr=localhost"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn auto_key_prefers_bpc_workload() {
        let pod = PodInfo {
            name: Some("web-7d4b9c8f5-x2k9p".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let k = choose_key("auto", Some("shop/deploy/checkout"), &pod, None, GreProfile::Standard).unwrap();
        assert_eq!(k.key, WorkloadKey::from_workload("shop", "deployment", "checkout").get());
        assert_eq!(k.workload.as_deref(), Some("shop/deploy/checkout"));
    }

    #[test]
    fn auto_key_falls_back_to_the_workload_guessed_from_the_pod_name() {
        let pod = PodInfo {
            name: Some("web-7d4b9c8f5-x2k9p".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let k = choose_key("auto", None, &pod, None, GreProfile::Standard).unwrap();
        assert_eq!(k.key, WorkloadKey::from_workload("shop", "deployment", "web").get());
        assert_eq!(k.workload.as_deref(), Some("shop/deployment/web"));
        assert!(k.source.contains("guessed"), "{}", k.source);
    }

    #[test]
    fn auto_key_without_namespace_comes_from_the_hostname_and_has_no_workload() {
        let k =
            choose_key("auto", None, &PodInfo::default(), Some("box".into()), GreProfile::Standard).unwrap();
        assert_eq!(k.key, WorkloadKey::from_workload("", "host", "box").get());
        assert_eq!(k.workload, None);
        assert!(k.source.contains("hostname"));
    }

    #[test]
    fn malformed_bpc_workload_is_a_configuration_error() {
        let e = choose_key("auto", Some("shop/checkout"), &PodInfo::default(), None, GreProfile::Standard);
        assert!(e.unwrap_err().to_string().contains("namespace/kind/name"));
    }

    #[test]
    fn explicit_keys_parse_decimal_and_hex_and_reject_garbage() {
        let p = PodInfo::default();
        assert_eq!(choose_key("4660", None, &p, None, GreProfile::Standard).unwrap().key, 0x1234);
        assert_eq!(choose_key("0xdeadbeef", None, &p, None, GreProfile::Standard).unwrap().key, 0xdead_beef);
        assert!(choose_key("key-1", None, &p, None, GreProfile::Standard).is_err());
    }

    #[test]
    fn netis_rejects_an_explicit_key_above_28_bits_and_masks_an_auto_key() {
        let p = PodInfo::default();
        let e = choose_key("0x10000000", None, &p, None, GreProfile::Netis).unwrap_err();
        assert!(e.to_string().contains("28-bit"), "{e}");
        assert_eq!(choose_key("0x0fffffff", None, &p, None, GreProfile::Netis).unwrap().key, 0x0fff_ffff);
        let auto = choose_key("auto", Some("a/deployment/b"), &p, None, GreProfile::Netis).unwrap();
        assert_eq!(auto.key, WorkloadKey::from_workload("a", "deployment", "b").get() & NetisKey::MAX_KEYBIT);
    }

    #[test]
    fn empty_environment_style_values_count_as_unset() {
        let c = config(&["--collector=198.18.0.2", "--filter=", "--interface= "]).unwrap();
        assert_eq!((c.filter, c.interface), (None, None));
    }
}
