//! The receiving engine: a raw IPPROTO_GRE socket (GRE, ERSPAN II and III)
//! and a UDP socket on the VXLAN port, each read on its own thread
//! (`socket`), per-stream counters (`accounting`), the inner frames'
//! flows (`inner`), and a [`Report`] available at any time (`report`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use bpc_contract::stream::{DirectionCounts, ReceivedProfile, StreamReport};

use crate::Error;
use crate::map::SharedMap;
use crate::paths::{Capturing, FlowTable, PathsReport};

mod accounting;
mod inner;
mod report;
mod socket;

pub use accounting::FrameSink;
use accounting::State;
use inner::unix_ns;
pub use report::{FlowReport, KeyReport, LatencyReport, Report, Totals, VXLAN_NOTE, summarize_keys};
use report::{build_report, unix};
use socket::{Arrival, gre_socket, receive_loop, sock_err, vxlan_socket};

/// Flows silent this long are folded into their edges (see [`FlowTable::compact`]).
const PATHS_IDLE: Duration = Duration::from_secs(120);

/// What the receiver listens on and how it labels streams.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// Address to bind (IPv4 or IPv6; unspecified = all).
    pub listen: IpAddr,
    /// Key -> workload names, address -> workload; others may update it while the receiver runs.
    pub map: SharedMap,
    /// Account flows for path discovery ([`Receiver::paths`]).
    pub paths: bool,
    /// Receives each decapsulated inner frame with its receive time (for `--write`).
    pub frame_sink: Option<Arc<Mutex<dyn FrameSink>>>,
}

/// What the VXLAN socket of a receiver listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanListen {
    /// The port, when it is free; otherwise a note in the report and GRE only
    /// (a node's own VXLAN overlay may hold 4789).
    Try(u16),
    /// The port, or the receiver does not start.
    Require(u16),
    /// No VXLAN socket.
    Off,
}

/// A running receiver.
pub struct Receiver {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    map: SharedMap,
    /// The bound address.
    pub local: IpAddr,
}

impl Receiver {
    /// Opens the raw GRE socket and, when the port is free, the VXLAN one
    /// on 4789, and starts the receiving threads.
    pub fn start(config: ReceiverConfig) -> Result<Receiver, Error> {
        Receiver::start_with(config, VxlanListen::Try(bpc_wire::vxlan::PORT))
    }

    /// [`Receiver::start`] with the VXLAN socket as `vxlan` says.
    pub fn start_with(config: ReceiverConfig, vxlan: VxlanListen) -> Result<Receiver, Error> {
        let (vxlan, vxlan_note) = match vxlan {
            VxlanListen::Off => (None, None),
            VxlanListen::Require(port) => (Some(vxlan_socket(config.listen, port)?), None),
            VxlanListen::Try(port) => match vxlan_socket(config.listen, port) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("not receiving VXLAN: {e}"))),
            },
        };
        let socket = gre_socket(config.listen)?;
        let state = Arc::new(Mutex::new(State::new(config.paths, vxlan_note)));
        let stop = Arc::new(AtomicBool::new(false));
        let v4 = config.listen.is_ipv4();
        let mut threads = Vec::with_capacity(2);
        let sockets =
            std::iter::once((socket, Arrival::RawGre { v4 })).chain(vxlan.map(|s| (s, Arrival::Vxlan)));
        for (socket, arrival) in sockets {
            let (st, sp, sink) = (state.clone(), stop.clone(), config.frame_sink.clone());
            let name = if arrival == Arrival::Vxlan { "bpc-receiver-vxlan" } else { "bpc-receiver" };
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || receive_loop(socket, arrival, st, sp, sink))
                .map_err(sock_err("spawning the receiver thread"));
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    threads.into_iter().for_each(|t| drop(t.join()));
                    return Err(e);
                }
            }
        }
        Ok(Receiver { state, stop, threads, started: Instant::now(), map: config.map, local: config.listen })
    }

    /// The counters so far.
    pub fn snapshot(&self) -> Report {
        // State before map, as the receiving thread takes them (its pcapng
        // writer reads the map under the state lock): one order, no deadlock
        // when a map writer waits in between.
        let st = self.state.lock().unwrap();
        let map = self.map.read().unwrap();
        build_report(&st, &map, self.started.elapsed())
    }

    /// The path graph so far (empty unless started with `paths`), labelled
    /// with the map as it is now.
    pub fn paths(&self) -> PathsReport {
        // State, then map: the order of [`Receiver::snapshot`] and the receiving thread.
        let mut guard = self.state.lock().unwrap();
        let map = self.map.read().unwrap();
        let st = &mut *guard;
        // Stream sources are the capturing pods: their flows are counted from the client side.
        let mut capturing = Capturing::new();
        for (k, s) in &st.streams {
            let (first, last) = (unix_ns(s.first), unix_ns(s.last));
            let w = capturing.entry(k.1).or_insert((first, last));
            *w = (w.0.min(first), w.1.max(last));
        }
        let now = SystemTime::now();
        let Some(paths) = st.inner.paths.as_mut() else {
            return FlowTable::default().report(&map, &capturing, unix(now));
        };
        let idle_before = now.checked_sub(PATHS_IDLE).unwrap_or(UNIX_EPOCH);
        paths.compact(
            &map,
            &capturing,
            idle_before.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64,
        );
        paths.report(&map, &capturing, unix(now))
    }

    /// The shared map the receiver labels with.
    pub fn map(&self) -> &SharedMap {
        &self.map
    }

    /// Valid packets so far: cheap, unlike [`Receiver::snapshot`] (which sorts latency samples).
    pub fn packets(&self) -> u64 {
        self.state.lock().unwrap().valid
    }

    /// Whether the frame sink failed (and no longer receives frames).
    pub fn sink_failed(&self) -> bool {
        self.state.lock().unwrap().sink_failed
    }

    /// The frame sink's error, once.
    pub fn take_sink_error(&self) -> Option<Error> {
        self.state.lock().unwrap().sink_error.take()
    }

    /// Stops the thread and returns the final report.
    pub fn stop(mut self) -> Report {
        self.join();
        self.snapshot()
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.join();
    }
}
