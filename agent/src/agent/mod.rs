//! The agent's run: configuration to a live capture, and its end.
//!
//! The data path: ring block → filter already applied by the kernel → rate
//! limit → oversize handling → GRE batch → `sendmmsg` → block released
//! ([`pipeline`]), driven by one loop ([`capture_loop`]) over the GRE output
//! or the pcapng one ([`write`]).

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use bpc_wire::{Retagged, ethernet};

use crate::capture::{Capture, CaptureGeometry, Frame, FrameSink, LARGEST_STANDARD_FRAME, wall_clock};
use bpc_contract::defaults::FINAL_TALLY_PREFIX;

use crate::config::{CAPTURE_SNAPLEN, Config, Encap, OnError, OversizeMode, WriteTarget};
use crate::error::{Error, Result};
use crate::filter;
use crate::iface::{self, Interface};
use crate::pcapng::{self, Counters, PcapngOut};
use crate::ratelimit::RateLimiter;
use crate::segment::{Outcome, Segmenter};
use crate::send::{MAX_IP_PACKET, Sender, max_frame_for};
use crate::stats::{Identity, Stats};
use crate::{control, privilege};
use crate::{http, resolve};

mod admission;
mod capture_loop;
mod pipeline;
mod write;

use admission::*;
use capture_loop::*;
use pipeline::*;
use write::*;

/// How long the loop sleeps in ppoll() when no block is ready: the heartbeat
/// period when idle. SIGTERM/SIGINT interrupt it at once (they are delivered
/// only during the wait), so it can be long: each wake-up costs CPU even with
/// nothing to do, and an idle sidecar should cost next to nothing.
const POLL_MS: i32 = 1000;
/// Kernel counters are read this often.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// Path MTU assumed until a collector resolves.
const DEFAULT_PATH_MTU: u32 = 1500;

/// The format with its parameters: the key (GRE), VNI and port (VXLAN),
/// session and the capture interface's index (ERSPAN).
fn encapsulation(config: &Config, iface: &Interface) -> bpc_wire::Encapsulation {
    use bpc_wire::Encapsulation as E;
    match config.encap {
        Encap::Gre => E::Gre { profile: config.profile, key: config.key.key },
        Encap::Vxlan => E::Vxlan { vni: config.vni, port: config.vxlan_port },
        Encap::ErspanIi => {
            E::ErspanII { session: config.session, index: iface.index & bpc_wire::erspan::MAX_INDEX }
        }
        Encap::ErspanIii => {
            E::ErspanIII { session: config.session, port_index: (iface.index & 0x3fff) as u16 }
        }
    }
}

/// The stream id a receiver reports the agent's stream under (key, VNI or session), for the log.
fn encapsulation_id(e: &bpc_wire::Encapsulation) -> String {
    use bpc_wire::Encapsulation as E;
    match e {
        E::Gre { key, .. } => format!("key {}", bpc_wire::WorkloadKey(*key)),
        E::Vxlan { vni, port } => format!("vni {vni} port {port}"),
        E::ErspanII { session, .. } | E::ErspanIII { session, .. } => format!("session {session}"),
    }
}

/// How the agent's own packets look, for the filter that keeps them out of the capture.
fn own_traffic(config: &Config) -> filter::OwnTraffic {
    match config.encap {
        Encap::Vxlan => filter::OwnTraffic::Udp { port: config.vxlan_port },
        Encap::Gre | Encap::ErspanIi | Encap::ErspanIii => filter::OwnTraffic::Gre,
    }
}

/// The collectors that have an address, and the smallest largest-frame over their paths.
fn destinations(stats: &Stats, gre_len: usize) -> (Vec<(usize, IpAddr)>, usize) {
    let mut out = Vec::new();
    let mut max_frame = usize::MAX;
    for (i, c) in stats.collectors.iter().enumerate() {
        if let Some(r) = c.resolution() {
            out.push((i, r.address));
            max_frame = max_frame.min(max_frame_for(r.path_mtu, r.address.is_ipv6(), gre_len));
        }
    }
    if out.is_empty() {
        max_frame = max_frame_for(DEFAULT_PATH_MTU, false, gre_len);
    }
    (out, max_frame)
}

/// Runs the agent until SIGTERM/SIGINT, `--duration` or `--count`. Errors before capture starts are
/// configuration or permission problems (exit 2); later ones are runtime failures. Returns the
/// final tally (also logged): the binary leaves it as the container's termination message, so
/// `kubectl bpc status --captures` can say what a finished capture got.
pub fn run(config: Config) -> Result<String> {
    privilege::install_stop_handlers();
    // Before any thread is spawned, so they all inherit the blocked mask.
    let wait_mask = privilege::block_stop_signals();
    let has_net_raw = privilege::raise_net_raw();
    let listener = TcpListener::bind(config.metrics_addr)
        .map_err(|source| Error::MetricsBind { addr: config.metrics_addr.to_string(), source })?;
    let metrics_port = listener.local_addr().map(|a| a.port()).unwrap_or(config.metrics_addr.port());
    // An endpoint on loopback never shows on the captured interface; excluding
    // its port there would only hide application traffic that happens to use it.
    let excluded_port = if config.metrics_addr.ip().is_loopback() { 0 } else { metrics_port };
    let identity = Identity {
        key: bpc_wire::WorkloadKey(config.key.key).to_string(),
        workload: config.key.workload.clone(),
        profile: config.profile.into(),
        oversize: config.oversize,
    };
    let hosts: Vec<String> = config.collectors.iter().map(|c| c.host.clone()).collect();
    let stats = Arc::new(Stats::new(identity, String::new(), &hosts));
    // The endpoint answers from the start: /startupz tells a native
    // sidecar's startup probe when capture is live.
    http::spawn(listener, stats.clone())
        .map_err(|e| Error::Io { what: "start the HTTP thread".into(), source: e })?;
    match capture(&config, &stats, excluded_port, has_net_raw, &wait_mask) {
        Err(e) if config.on_error == OnError::Serve => Ok(serve_failure(&stats, &e, &wait_mask)),
        other => other,
    }
}

/// `--on-error serve`: capture failed; the agent stays up saying why
/// (`/healthz`, `/stats`; `/livez` and `/startupz` pass) until stopped.
fn serve_failure(stats: &Stats, e: &Error, wait_mask: &libc::sigset_t) -> String {
    let why = e.to_string();
    error!(error = %why, "capture failed; serving the reason on /healthz and /stats until stopped (--on-error serve)");
    stats.set_capture_error(why.clone());
    privilege::wait_for_stop(wait_mask);
    let summary = format!("not capturing: {why}");
    info!("{summary}");
    summary
}

/// Everything from choosing the interface to the end of the capture.
fn capture(
    config: &Config,
    stats: &Arc<Stats>,
    excluded_port: u16,
    has_net_raw: bool,
    wait_mask: &libc::sigset_t,
) -> Result<String> {
    let iface = iface::choose(config.interface.as_deref())?;
    *stats.interface.lock().unwrap_or_else(|e| e.into_inner()) = iface.name.clone();
    if !iface.is_ethernet() {
        return Err(Error::Interface(format!(
            "interface {} is not Ethernet (link type {}): GRE 0x6558 carries Ethernet frames; \
             choose another with --interface (BPC_INTERFACE)",
            iface.name, iface.link_type
        )));
    }
    if !iface.up {
        warn!(interface = %iface.name, "capture interface is down; capturing anyway");
    }
    // Filter problems are configuration errors: report them before touching sockets.
    filter::compile(&filter::compose(config.filter.as_deref(), &[], own_traffic(config), 0))?;
    if config.stdin_control {
        if !control::wait_for_start(wait_mask)? {
            let summary = "stdin-control: stdin closed or stop requested before the start; nothing captured";
            info!("{summary}");
            return Ok(summary.to_owned());
        }
        control::spawn_stop_watch()
            .map_err(|e| Error::Io { what: "start the stdin-control thread".into(), source: e })?;
    }
    resolve::resolve_all(&config.collectors, stats);

    let encapsulation = encapsulation(config, &iface);
    let (dests, max_frame) = destinations(stats, encapsulation.header_len());
    let addresses: Vec<IpAddr> = dests.iter().map(|d| d.1).collect();
    let filter_text =
        filter::compose(config.filter.as_deref(), &addresses, own_traffic(config), excluded_port);
    *stats.filter.lock().unwrap_or_else(|e| e.into_inner()) = filter_text.clone();

    // The super-frame ring's blocks hold the largest frame whole: a
    // super-frame of a standard stack, or a jumbo frame; BIG TCP frames above
    // it arrive cut (and are counted).
    let mtu_frame = iface.mtu as usize + ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN;
    let largest_frame = LARGEST_STANDARD_FRAME.max(mtu_frame).min(CAPTURE_SNAPLEN);
    let geometry = CaptureGeometry::new(config.buffer_mib as usize * (1 << 20), mtu_frame, largest_frame)
        .map_err(|why| Error::Config(format!("--buffer (BPC_BUFFER) {} MiB: {why}", config.buffer_mib)))?;
    // With --batch the frames gather in blocks that time out after the batch.
    let geometry = config.batch.map_or(geometry, |batch| geometry.batched(batch));
    let mut capture = Capture::open(&iface, &filter_text, geometry, config.buffer_mib)?;
    if let Some(target) = &config.write {
        let snaplen = config.snaplen.unwrap_or(CAPTURE_SNAPLEN);
        let out = PcapngOut::open(target, &iface.name, snaplen as u32)?;
        info!(
            version = crate::stats::VERSION,
            interface = %iface.name,
            write = %match target { WriteTarget::Stdout => "stdout".into(), WriteTarget::File(p) => p.display().to_string() },
            duration = ?config.duration,
            count = ?config.count,
            metrics = %config.metrics_addr,
            ring = %geometry.describe(),
            ring_split = ?capture.split(),
            cap_net_raw = has_net_raw,
            filter = %filter_text,
            "capturing to pcapng"
        );
        let result = write_loop(config, &mut capture, &iface, out, snaplen, stats, wait_mask);
        let summary = log_summary(stats);
        return result.map(|()| summary);
    }
    let mut sender = Sender::new(encapsulation, iface.mac)?;
    sender.set_destinations(&dests);
    sender.set_send_path(config.send_path);
    // Taken before the resolver thread starts, so that a resolution it
    // publishes from then on applies to the next frames.
    let seen_generation = stats.generation.load(Ordering::Acquire);

    resolve::spawn(config.collectors.clone(), stats.clone(), config.resolve_interval)
        .map_err(|e| Error::Io { what: "start the resolver thread".into(), source: e })?;

    info!(
        version = crate::stats::VERSION,
        interface = %iface.name,
        key = %stats.identity.key,
        key_source = %config.key.source,
        collectors = %config.collectors.iter().map(|c| c.host.as_str()).collect::<Vec<_>>().join(","),
        encap = %config.encap,
        profile = %config.profile,
        stream_id = encapsulation_id(&encapsulation),
        oversize = config.oversize.as_str(),
        max_frame,
        metrics = %config.metrics_addr,
        metrics_private = config.metrics_private,
        ring = %geometry.describe(),
        ring_split = ?capture.split(),
        cap_net_raw = has_net_raw,
        filter = %filter_text,
        "capturing"
    );

    let pipeline = Pipeline::new(sender, max_frame, config);
    let mut forward = Forward::new(pipeline, stats, config, excluded_port, seen_generation);
    let result = capture_loop(&mut capture, &mut forward, &iface, stats, config.linger, wait_mask);
    let summary = log_summary(stats);
    result.map(|()| summary)
}

/// Applies new collector addresses to the capture filter (the pipeline's
/// destinations were set by [`Pipeline::retarget`]).
fn reconfigure(config: &Config, stats: &Stats, capture: &Capture, addresses: &[IpAddr], excluded_port: u16) {
    let text = filter::compose(config.filter.as_deref(), addresses, own_traffic(config), excluded_port);
    if text == stats.filter() {
        return;
    }
    match capture.set_filter(&text) {
        Ok(()) => {
            info!(filter = %text, "capture filter updated for new collector addresses");
            *stats.filter.lock().unwrap_or_else(|e| e.into_inner()) = text;
        }
        Err(e) => error!(error = %e, "cannot update the capture filter; keeping the previous one"),
    }
}

/// Logs the final tally and returns it (for the termination message).
fn log_summary(stats: &Stats) -> String {
    let s = stats.snapshot(Instant::now());
    let sent: Vec<String> = s
        .collectors
        .iter()
        .map(|c| {
            format!(
                "{} {} packets/{} bytes ({} errors)",
                c.host,
                c.sent_packets,
                c.sent_bytes,
                c.errors.failing()
            )
        })
        .collect();
    let summary = format!(
        "{FINAL_TALLY_PREFIX}{:.1}s: captured {} packets ({} bytes), kernel drops {}, interface drops {}, \
         rate-limited {}, truncated {}, segmented {}; sent to {}",
        s.uptime_seconds,
        s.capture.packets,
        s.capture.bytes,
        s.capture.kernel_drops,
        s.capture.interface_drops,
        s.capture.rate_limited,
        s.capture.truncated,
        s.capture.segmented,
        if sent.is_empty() { "none (--write)".to_owned() } else { sent.join(", ") }
    );
    info!("{summary}");
    summary
}
