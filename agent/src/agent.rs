//! The capture loop: ring block → filter already applied by the kernel →
//! rate limit → oversize handling → GRE batch → `sendmmsg` → block released.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use bpc_wire::Retagged;

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

/// How long the loop sleeps in ppoll() when no block is ready: the heartbeat
/// period when idle. SIGTERM/SIGINT interrupt it at once (they are delivered
/// only during the wait), so it can be long: each wake-up costs CPU even with
/// nothing to do, and an idle sidecar should cost next to nothing.
const POLL_MS: i32 = 1000;
/// Kernel counters are read this often.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// Path MTU assumed until a collector resolves.
const DEFAULT_PATH_MTU: u32 = 1500;

/// Per-block tallies, added to the shared atomics once per block.
#[derive(Debug, Default)]
struct Tally {
    packets: u64,
    bytes: u64,
    truncated: u64,
    segmented: u64,
    segments: u64,
    rate_limited: u64,
}

/// `--duration` and `--count`: when the capture ends by itself.
#[derive(Debug, Clone, Copy)]
struct Limits {
    deadline: Option<Instant>,
    /// Packets still to capture.
    remaining: Option<u64>,
}

impl Limits {
    fn new(config: &Config, now: Instant) -> Limits {
        Limits { deadline: config.duration.map(|d| now + d), remaining: config.count }
    }

    /// Takes one packet; false once `--count` packets were taken.
    fn take(&mut self) -> bool {
        match &mut self.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }

    fn reached(&self, now: Instant) -> bool {
        self.remaining == Some(0) || self.deadline.is_some_and(|d| now >= d)
    }

    /// How long to sleep in ppoll: the idle period, shorter near the deadline.
    fn poll_ms(&self, now: Instant) -> i32 {
        match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(now).as_millis().min(POLL_MS as u128) as i32;
                left.max(1)
            }
            None => POLL_MS,
        }
    }
}

/// Everything that touches a frame between the ring and the socket.
struct Pipeline {
    sender: Sender,
    segmenter: Segmenter,
    limiter: RateLimiter,
    oversize: OversizeMode,
    /// Bytes kept of each sent frame.
    snaplen: usize,
    /// Largest frame that fits one GRE packet on the collector path.
    max_frame: usize,
    /// Largest frame a GRE packet can carry at all (fragmented).
    max_whole: usize,
    /// A VLAN super-frame with its tag put back, for the segmenter.
    scratch: Vec<u8>,
    tally: Tally,
    limits: Limits,
}

impl Pipeline {
    fn handle(&mut self, frame: Frame<'_>, stats: &Stats) {
        if !self.limits.take() {
            return;
        }
        let tag_len = if frame.vlan.is_some() { 4 } else { 0 };
        let len = frame.data.len() + tag_len;
        self.tally.packets += 1;
        self.tally.bytes += len as u64;
        if !self.limiter.admit(len) {
            self.tally.rate_limited += 1;
            return;
        }
        // Longer than a ring block (BIG TCP): the kernel kept only the start,
        // which cannot be segmented; send what there is, cut to fit, and
        // count it as truncated.
        if frame.data.len() < (frame.wire_len as usize).min(CAPTURE_SNAPLEN) {
            self.push_ring(frame, self.max_frame.min(self.snaplen), stats);
            return;
        }
        if len <= self.max_frame {
            self.push_ring(frame, self.snaplen, stats);
            return;
        }
        match self.oversize {
            OversizeMode::Truncate => self.push_ring(frame, self.max_frame.min(self.snaplen), stats),
            OversizeMode::Fragment => self.push_ring(frame, self.max_whole.min(self.snaplen), stats),
            OversizeMode::Segment => self.segment(frame, stats),
        }
    }

    /// Queues a ring frame (zero copy), cut to `keep` bytes.
    fn push_ring(&mut self, frame: Frame<'_>, keep: usize, stats: &Stats) {
        let tag_len = if frame.vlan.is_some() { 4 } else { 0 };
        let data = if frame.data.len() + tag_len > keep {
            self.tally.truncated += 1;
            &frame.data[..keep.saturating_sub(tag_len).max(14).min(frame.data.len())]
        } else {
            frame.data
        };
        // SAFETY: the frame lives in the ring block being processed; the
        // capture loop flushes the sender before it releases that block.
        unsafe { self.sender.push_borrowed(data, frame.vlan, frame.timestamp, stats) };
    }

    fn segment(&mut self, frame: Frame<'_>, stats: &Stats) {
        let data: &[u8] = match frame.vlan.as_ref().and_then(|tag| Retagged::new(frame.data, tag)) {
            // The scratch buffer holds a whole capture (allocated once); encode cannot fail.
            Some(tagged) => {
                self.scratch.resize(tagged.len(), 0);
                match tagged.encode(&mut self.scratch) {
                    Ok(n) => &self.scratch[..n],
                    Err(_) => frame.data,
                }
            }
            None => frame.data,
        };
        let whole = data.as_ptr();
        let (snaplen, max_whole, captured) = (self.snaplen, self.max_whole, frame.timestamp);
        let mut truncated = 0;
        let mut unsplittable = false;
        let outcome = self.segmenter.segment(data, |out| {
            if out.as_ptr() == whole {
                // Handed back whole: send it from the ring like --oversize fragment.
                unsplittable = true;
                return;
            }
            let keep = out.len().min(snaplen);
            truncated += u64::from(keep < out.len());
            self.sender.push_copied(&out[..keep], captured, stats);
        });
        self.tally.truncated += truncated;
        match outcome {
            Outcome::Segmented { segments: n } | Outcome::Fragmented { fragments: n } => {
                self.tally.segmented += 1;
                self.tally.segments += n as u64;
            }
            Outcome::Unchanged | Outcome::Unsplittable => {}
        }
        if unsplittable {
            self.push_ring(frame, max_whole.min(snaplen), stats);
        }
    }

    fn publish(&mut self, stats: &Stats, now: Instant) {
        publish(std::mem::take(&mut self.tally), stats, now);
    }
}

/// The pipeline as the capture's frame sink: frames are queued in the
/// sender straight from ring memory and sent before their blocks go back.
struct Forward<'a> {
    pipeline: &'a mut Pipeline,
    stats: &'a Stats,
    config: &'a Config,
    excluded_port: u16,
    /// The collector resolutions last applied.
    seen_generation: u64,
}

impl Output for Forward<'_> {
    fn limits(&self) -> &Limits {
        &self.pipeline.limits
    }

    fn before_round(&mut self, capture: &Capture) {
        // After the wait, not before: a new collector address published while
        // we slept must apply to the frames that woke us.
        let generation = self.stats.generation.load(Ordering::Acquire);
        if generation != self.seen_generation {
            self.seen_generation = generation;
            reconfigure(self.config, self.stats, capture, self.pipeline, self.excluded_port);
        }
    }

    fn after_round(&mut self, periodic: bool) -> Result<()> {
        if periodic {
            self.pipeline.sender.drain_icmp_errors(self.stats);
            // After the ICMP errors: the window judges them with the sends.
            self.stats.roll_recent(Instant::now());
            self.pipeline.sender.refresh_links();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.pipeline.sender.flush(self.stats);
        Ok(())
    }
}

impl FrameSink for Forward<'_> {
    fn frame(&mut self, frame: Frame<'_>) {
        self.pipeline.handle(frame, self.stats);
    }

    fn release(&mut self) {
        let now = Instant::now();
        self.pipeline.sender.flush(self.stats);
        self.pipeline.publish(self.stats, now);
        if self.pipeline.limiter.is_active() {
            self.pipeline.limiter.refill(now);
        }
    }
}

/// Adds a batch's tallies to the shared counters.
fn publish(t: Tally, stats: &Stats, now: Instant) {
    if t.packets == 0 {
        return;
    }
    let c = &stats.capture;
    c.packets.fetch_add(t.packets, Ordering::Relaxed);
    c.bytes.fetch_add(t.bytes, Ordering::Relaxed);
    c.truncated.fetch_add(t.truncated, Ordering::Relaxed);
    c.segmented.fetch_add(t.segmented, Ordering::Relaxed);
    c.segments.fetch_add(t.segments, Ordering::Relaxed);
    c.rate_limited.fetch_add(t.rate_limited, Ordering::Relaxed);
    c.last_packet.set(stats.started, now);
}

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
    let mtu_frame = iface.mtu as usize + 18;
    let largest_frame = LARGEST_STANDARD_FRAME.max(mtu_frame).min(CAPTURE_SNAPLEN);
    let geometry = CaptureGeometry::new(config.buffer_mib as usize * (1 << 20), mtu_frame, largest_frame)
        .map_err(|why| Error::Config(format!("--buffer (BPC_BUFFER) {} MiB: {why}", config.buffer_mib)))?;
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

    let mut pipeline = Pipeline {
        sender,
        segmenter: Segmenter::new(max_frame),
        limiter: RateLimiter::new(config.max_pps, config.max_bytes_per_sec, Instant::now()),
        oversize: config.oversize,
        snaplen: config.snaplen.unwrap_or(CAPTURE_SNAPLEN),
        max_frame,
        max_whole: MAX_IP_PACKET - 40 - bpc_wire::encap::MAX_HEADER_LEN,
        scratch: Vec::with_capacity(CAPTURE_SNAPLEN + 4),
        tally: Tally::default(),
        limits: Limits::new(config, Instant::now()),
    };
    let mut forward = Forward { pipeline: &mut pipeline, stats, config, excluded_port, seen_generation };
    let result = capture_loop(&mut capture, &mut forward, &iface, stats, config.linger, wait_mask);
    let summary = log_summary(stats);
    result.map(|()| summary)
}

/// Where the capture loop's frames go, and what each round ends with: GRE
/// to the collectors ([`Forward`]) or a pcapng file ([`WritePcapng`]).
trait Output: FrameSink {
    /// `--duration` and `--count`.
    fn limits(&self) -> &Limits;
    /// Before a round's frames are taken.
    fn before_round(&mut self, _capture: &Capture) {}
    /// After a round; `periodic` once per [`STATS_PERIOD`], after the kernel
    /// counters were read. An error ends the capture.
    fn after_round(&mut self, periodic: bool) -> Result<()>;
    /// After the last frames, the kernel counters read a last time.
    fn finish(&mut self) -> Result<()>;
}

/// The one capture loop: wait for the rings, hand their blocks to `output`,
/// until a stop (with `--linger`), `--duration` or `--count`; then the
/// last blocks and the output's last word.
fn capture_loop(
    capture: &mut Capture,
    output: &mut impl Output,
    iface: &Interface,
    stats: &Stats,
    linger: Duration,
    wait_mask: &libc::sigset_t,
) -> Result<()> {
    let base_ifdrops = iface.rx_dropped();
    let mut last_stats = Instant::now();
    // Capture is live: /startupz passes from here.
    stats.capture.heartbeat.set(stats.started, Instant::now());
    let mut shutdown = Shutdown::new(linger);
    let result = loop {
        let now = Instant::now();
        if shutdown.done(stats, now) || output.limits().reached(now) {
            break Ok(());
        }
        let poll = shutdown.poll_ms().unwrap_or_else(|| output.limits().poll_ms(now));
        if let Err(e) = capture.wait(poll, wait_mask) {
            break Err(e);
        }
        output.before_round(capture);
        let blocks = capture.block_count();
        let drained = capture.drain(output, blocks);
        let now = Instant::now();
        capture.steer(drained, now);
        stats.capture.set_path(capture.path());
        stats.capture.heartbeat.set(stats.started, now);
        let periodic = now.duration_since(last_stats) >= STATS_PERIOD;
        if periodic {
            last_stats = now;
            read_kernel_counters(capture, iface, base_ifdrops, stats);
        }
        if let Err(e) = output.after_round(periodic) {
            break Err(e);
        }
        if let Some(pause) = drained.pause() {
            std::thread::sleep(pause);
        }
    };
    if result.is_ok() {
        last_blocks(capture, output);
    }
    read_kernel_counters(capture, iface, base_ifdrops, stats);
    result.and_then(|()| output.finish())
}

/// After SIGTERM or SIGINT: stop at once, or with `--linger`, keep capturing
/// while the pod still has traffic, within the linger.
struct Shutdown {
    linger: Duration,
    /// When the stop signal was first seen.
    since: Option<Instant>,
}

/// Lingering ends after this long without a captured packet.
const LINGER_QUIET: Duration = Duration::from_secs(1);
/// How often lingering looks at the clock.
const LINGER_POLL_MS: i32 = 100;
/// The kernel retires the block being filled within its timeout (counted in
/// jiffies): waiting this long before the last drain takes the frames of the
/// pod's last moments too.
const LAST_BLOCK_WAIT: Duration = Duration::from_millis(20);

impl Shutdown {
    fn new(linger: Duration) -> Shutdown {
        Shutdown { linger, since: None }
    }

    /// Whether the capture should end now.
    fn done(&mut self, stats: &Stats, now: Instant) -> bool {
        if !privilege::stop_requested() {
            return false;
        }
        let since = *self.since.get_or_insert_with(|| {
            if !self.linger.is_zero() {
                info!(linger = ?self.linger, "stop requested: capturing while the pod still has traffic");
            }
            now
        });
        let stopping_for = now.saturating_duration_since(since);
        let quiet = stats.capture.last_packet.age(stats.started, now).is_none_or(|a| a >= LINGER_QUIET);
        stopping_for >= self.linger || (stopping_for >= LINGER_QUIET && quiet)
    }

    /// The wait while lingering: short, to see the clock.
    fn poll_ms(&self) -> Option<i32> {
        self.since.map(|_| LINGER_POLL_MS)
    }
}

/// The last drain: the block being filled when the capture ended, once the
/// kernel has retired it.
fn last_blocks(capture: &mut Capture, sink: &mut impl FrameSink) {
    std::thread::sleep(LAST_BLOCK_WAIT);
    let blocks = capture.block_count();
    capture.drain(sink, blocks);
}

/// The `--write` loop's frame sink: rate limit → pcapng (frames are copied
/// into the writer, so giving blocks back needs nothing but the tallies).
struct WritePcapng<'a> {
    out: &'a mut PcapngOut,
    limits: &'a mut Limits,
    limiter: &'a mut RateLimiter,
    snaplen: usize,
    stats: &'a Stats,
    tally: Tally,
    delivered: u64,
    failed: Option<Error>,
}

impl FrameSink for WritePcapng<'_> {
    fn frame(&mut self, frame: Frame<'_>) {
        if self.failed.is_some() || !self.limits.take() {
            return;
        }
        let len = frame.data.len() + if frame.vlan.is_some() { 4 } else { 0 };
        self.tally.packets += 1;
        self.tally.bytes += len as u64;
        if !self.limiter.admit(len) {
            self.tally.rate_limited += 1;
            return;
        }
        self.tally.truncated += u64::from(len.min(self.snaplen) < frame.wire_len as usize);
        match self.out.packet(&frame, self.snaplen) {
            Ok(()) => self.delivered += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    fn release(&mut self) {
        let now = Instant::now();
        publish(std::mem::take(&mut self.tally), self.stats, now);
        if self.limiter.is_active() {
            self.limiter.refill(now);
        }
    }
}

impl WritePcapng<'_> {
    /// The interface statistics block: what was captured, dropped and written.
    fn statistics(&mut self) -> Result<()> {
        let s = self.stats.snapshot(Instant::now());
        self.out.statistics(
            wall_clock(),
            Counters {
                received: s.capture.packets,
                interface_drops: s.capture.interface_drops,
                os_drops: s.capture.kernel_drops + s.capture.rate_limited,
                delivered: self.delivered,
            },
        )
    }
}

impl Output for WritePcapng<'_> {
    fn limits(&self) -> &Limits {
        self.limits
    }

    fn after_round(&mut self, periodic: bool) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if periodic {
            self.statistics()?;
        }
        self.out.flush()
    }

    /// The last word: final counters, then everything to the reader.
    fn finish(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.statistics()?;
        self.out.flush()
    }
}

/// The `--write` loop: capture → filter already applied → rate limit → pcapng.
fn write_loop(
    config: &Config,
    capture: &mut Capture,
    iface: &Interface,
    mut out: PcapngOut,
    snaplen: usize,
    stats: &Stats,
    wait_mask: &libc::sigset_t,
) -> Result<()> {
    let mut limits = Limits::new(config, Instant::now());
    let mut limiter = RateLimiter::new(config.max_pps, config.max_bytes_per_sec, Instant::now());
    let mut sink = WritePcapng {
        out: &mut out,
        limits: &mut limits,
        limiter: &mut limiter,
        snaplen,
        stats,
        tally: Tally::default(),
        delivered: 0,
        failed: None,
    };
    match capture_loop(capture, &mut sink, iface, stats, config.linger, wait_mask) {
        Err(e) if pcapng::reader_gone(&e) => {
            info!("the reader of --write went away (broken pipe); stopping");
            Ok(())
        }
        other => other,
    }
}

/// Now, since the Unix epoch: the clock the ring stamps frames with.
fn read_kernel_counters(capture: &Capture, iface: &Interface, base_ifdrops: u64, stats: &Stats) {
    match capture.stats() {
        Ok(s) => {
            stats.capture.kernel_drops.fetch_add(u64::from(s.drops), Ordering::Relaxed);
        }
        Err(e) => warn!(error = %e, "cannot read capture statistics"),
    }
    stats.capture.interface_drops.store(iface.rx_dropped().saturating_sub(base_ifdrops), Ordering::Relaxed);
}

/// Applies new collector addresses: destinations, path MTU and the self-exclusion filter.
fn reconfigure(
    config: &Config,
    stats: &Stats,
    capture: &Capture,
    pipeline: &mut Pipeline,
    excluded_port: u16,
) {
    pipeline.sender.flush(stats);
    let (dests, max_frame) = destinations(stats, pipeline.sender.header_len());
    pipeline.sender.set_destinations(&dests);
    if max_frame != pipeline.max_frame {
        info!(max_frame, "largest frame per GRE packet changed");
        pipeline.max_frame = max_frame;
        pipeline.segmenter = Segmenter::new(max_frame);
    }
    let addresses: Vec<IpAddr> = dests.iter().map(|d| d.1).collect();
    let text = filter::compose(config.filter.as_deref(), &addresses, own_traffic(config), excluded_port);
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
