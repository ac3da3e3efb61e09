//! The agent's settings on the command line, declared once: [`AgentFlags`]
//! (attach, inject and capture) and [`SidecarFlags`] (attach and inject: the
//! agent flags and the sidecar container's own). Both only parse; what the
//! commands work with is the [`SidecarOptions`] they stand for.

use bpc_contract::defaults::{MAX_BUFFER_MIB, MIN_BUFFER_MIB};

use super::{
    DEFAULT_CPU, DEFAULT_CPU_LIMIT, DEFAULT_MEMORY, DEFAULT_MEMORY_LIMIT, DEFAULT_METRICS_PORT, Encap,
    GreProfile, Oversize, SendPath, SidecarOptions,
};

/// How the agent captures and sends: the flags every command that runs an
/// agent takes. Help texts are the sidecar's; `capture` rewords some for
/// its ephemeral container (see `CaptureArgs`).
#[derive(Debug, Clone, clap::Args)]
pub struct AgentFlags {
    /// Collector to stream GRE to: IPv4/IPv6 address or DNS name; repeat or comma-separate, up to 4.
    #[arg(long = "collector", value_name = "HOST", value_delimiter = ',', required = true)]
    pub collectors: Vec<String>,
    /// Capture filter in tcpdump (BPF) syntax [default: all of the pod's traffic].
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Interface to capture on inside the pod [default: the default route's, e.g. eth0].
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Bytes kept of each frame [default: all of it].
    #[arg(long, value_name = "BYTES")]
    pub snaplen: Option<u32>,
    /// Most packets per second to forward per pod (excess dropped and counted).
    #[arg(long, value_name = "N")]
    pub max_pps: Option<u64>,
    /// Most megabits per second to forward per pod (excess dropped and counted).
    #[arg(long, value_name = "N")]
    pub max_mbps: Option<u64>,
    /// What to do with frames larger than one GRE packet can carry [agent default: segment].
    #[arg(long, value_enum)]
    pub oversize: Option<Oversize>,
    /// GRE header profile [agent default: standard].
    #[arg(long, value_enum)]
    pub gre_profile: Option<GreProfile>,
    /// The format frames travel in: gre, vxlan, erspan-ii or erspan-iii [agent default: gre].
    #[arg(long, value_enum)]
    pub encap: Option<Encap>,
    /// With --encap vxlan: the VNI [agent default: the workload key's low 24 bits].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(bpc_wire::vxlan::MAX_VNI)))]
    pub vni: Option<u32>,
    /// With --encap erspan-ii/erspan-iii: the session ID [agent default: the workload key's low 10 bits].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=i64::from(bpc_wire::erspan::MAX_SESSION)))]
    pub session: Option<u16>,
    /// GRE key (decimal or 0x-hex) instead of the workload key; with --gre-profile netis, the keybit.
    #[arg(long, value_name = "N", value_parser = parse_key)]
    pub key: Option<u32>,
    /// Agent image [default: ghcr.io/kubectl-bpc/bpc-agent:<plugin version>].
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Capture ring size in MiB (BPC_BUFFER) [agent default: 24]: rides out longer scheduling
    /// stalls for more memory (about 27 ms per MiB at rates up to ~30 MB/s).
    #[arg(long, value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_BUFFER_MIB)..=i64::from(MAX_BUFFER_MIB)))]
    pub buffer: Option<u32>,
    /// Let frames gather up to DURATION (2ms to 1s) and leave in batches (BPC_BATCH) [agent
    /// default: 0, each frame as soon as captured]: much less CPU at low and middling rates, for
    /// a collector that does not time transactions; frames arrive up to twice DURATION late.
    #[arg(long, value_name = "DURATION", value_parser = bpc_contract::duration::parse_batch)]
    pub batch: Option<std::time::Duration>,
}

impl AgentFlags {
    /// The options these flags stand for; the sidecar container's own
    /// settings at their defaults.
    pub fn options(&self) -> SidecarOptions {
        SidecarOptions {
            collectors: self.collectors.clone(),
            filter: self.filter.clone(),
            interface: self.interface.clone(),
            snaplen: self.snaplen,
            max_pps: self.max_pps,
            max_mbps: self.max_mbps,
            oversize: self.oversize,
            gre_profile: self.gre_profile,
            encap: self.encap,
            vni: self.vni,
            session: self.session,
            key: self.key,
            image: self.image.clone(),
            buffer: self.buffer,
            batch: self.batch.filter(|b| !b.is_zero()).map(bpc_contract::duration::batch_text),
            ..SidecarOptions::with_collectors(&[])
        }
    }
}

/// The flags of a sidecar (attach, inject): the agent's, and the container's
/// resources, endpoint and send path.
#[derive(Debug, Clone, clap::Args)]
pub struct SidecarFlags {
    /// How the agent captures and sends.
    #[command(flatten)]
    pub agent: AgentFlags,
    /// How the agent sends [agent default: auto].
    #[arg(long, value_enum)]
    pub send_path: Option<SendPath>,
    /// CPU request of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = DEFAULT_CPU)]
    pub cpu: String,
    /// CPU limit of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = DEFAULT_CPU_LIMIT)]
    pub cpu_limit: String,
    /// Memory request of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = DEFAULT_MEMORY)]
    pub memory: String,
    /// Memory limit of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: String,
    /// Port of the agent's /metrics, /stats and /healthz (container port `bpc-metrics`).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
    /// Serve the agent's /metrics, /stats and /healthz on loopback only (BPC_METRICS_PRIVATE):
    /// no other pod can read them; the liveness probe runs `bpc-agent --check-health` instead
    /// of an httpGet, no container port is declared, and status reports the counters as private.
    #[arg(long)]
    pub metrics_private: bool,
}

impl SidecarFlags {
    /// The options these flags stand for (what the container is built from
    /// and the status annotation records).
    pub fn options(&self) -> SidecarOptions {
        SidecarOptions {
            send_path: self.send_path,
            cpu: self.cpu.clone(),
            cpu_limit: self.cpu_limit.clone(),
            memory: self.memory.clone(),
            memory_limit: self.memory_limit.clone(),
            metrics_port: self.metrics_port,
            metrics_private: self.metrics_private,
            ..self.agent.options()
        }
    }
}

/// `--key`: a GRE key as the agent takes it.
fn parse_key(text: &str) -> Result<u32, String> {
    text.parse::<bpc_wire::WorkloadKey>()
        .map(|k| k.0)
        .map_err(|e| format!("{e}: give a decimal or 0x-hex 32-bit key"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::sidecar::fixture::every_option;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sidecar: SidecarFlags,
    }

    #[test]
    fn every_flag_lands_in_its_option_and_the_container_defaults_are_the_options_defaults() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().sidecar.options();
        assert_eq!(
            parse(&["x", "--collector", "198.18.0.2"]),
            SidecarOptions::with_collectors(&["198.18.0.2"])
        );
        let every = "x --collector 198.18.0.2,probe.obs.svc --filter udp --interface eth0 --snaplen 256 \
             --max-pps 5000 --max-mbps 100 --oversize truncate --gre-profile standard --send-path raw \
             --encap erspan-iii --vni 7 --session 9 --key 0x10 --image bpc-agent:test --cpu 100m --cpu-limit 1 \
             --memory 64Mi --memory-limit 128Mi --metrics-port 9470 --metrics-private --buffer 48 --batch 0.25s";
        assert_eq!(Cli::try_parse_from(every.split_whitespace()).unwrap().sidecar.options(), every_option());
    }
}
