//! `kubectl bpc sink`: the receiver (bpc-receiver) run in-process, for a laptop or
//! the host of a kind cluster, and the receiver `verify` embeds.
//!
//! There is one receiver in the project, [`bpc_receiver::receiver`]: `sink` takes
//! the very options of `bpc-sim receive` (flattened [`ReceiveArgs`]) and runs
//! [`bpc_receiver::receive::run_receive`]; [`GreTally`] is the narrow view of the
//! same receiver that `verify` polls.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub use bpc_contract::stream::StreamReport;
use bpc_receiver::map::{SharedMap, WorkloadMap};
use bpc_receiver::receive::ReceiveArgs;
use bpc_receiver::receiver::{Receiver, ReceiverConfig};

use crate::kube_context::KubeArgs;
use crate::map::{MapEvent, MapEventKind};

use crate::Error;

/// Arguments of `kubectl bpc sink`: those of `bpc-sim receive`, and `--map-watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// The receiver's options.
    #[command(flatten)]
    pub receive: ReceiveArgs,
    /// Label streams and paths from a live `kubectl bpc map --watch` run in-process
    /// (needs cluster access; -n NS or -A choose the namespaces).
    #[arg(long)]
    pub map_watch: bool,
}

/// A running GRE receiver (bpc-receiver's); stops (and joins its thread) on drop.
pub struct GreTally {
    receiver: Receiver,
    started: Instant,
}

impl std::fmt::Debug for GreTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreTally").field("listen", &self.receiver.local).finish_non_exhaustive()
    }
}

impl GreTally {
    /// Opens the raw GRE socket on `listen` (IPv4 or IPv6) and starts receiving.
    pub fn start(listen: IpAddr) -> Result<Self, Error> {
        let config = ReceiverConfig { listen, map: Default::default(), paths: false, frame_sink: None };
        let receiver = Receiver::start(config).map_err(|e| receiver_error(e, listen))?;
        Ok(GreTally { receiver, started: Instant::now() })
    }

    /// Current counters of every stream, sorted by source then key.
    pub fn snapshot(&self) -> Vec<StreamReport> {
        let mut streams = self.receiver.snapshot().streams;
        streams.sort_by(|a, b| (a.source, a.workload_key()).cmp(&(b.source, b.workload_key())));
        streams
    }

    /// Time since the receiver started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Socket errors name the fix: permission problems and foreign addresses
/// are the user's to correct (usage, exit 2), anything else is the receiver's.
fn receiver_error(e: bpc_receiver::Error, listen: IpAddr) -> Error {
    match &e {
        bpc_receiver::Error::Socket { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Error::Usage(format!(
                "cannot open a raw GRE socket ({source}): run as root or grant CAP_NET_RAW \
                 (sudo setcap cap_net_raw+ep $(which kubectl-bpc))"
            ))
        }
        bpc_receiver::Error::Socket { source, .. }
            if source.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            Error::Usage(format!("cannot receive on {listen}: {source} (is it a local address?)"))
        }
        _ => Error::Receiver(e.to_string()),
    }
}

/// Applies one `map --watch` event to the receiver's map. A delete changes
/// nothing: the address keeps its last label, so flows of a replaced pod
/// stay with their workload (a new row for the address relabels it).
pub fn apply_map_event(map: &SharedMap, event: &MapEvent) -> Result<(), Error> {
    if event.event == MapEventKind::Delete {
        return Ok(());
    }
    let one = WorkloadMap::from_entries([&event.entry]).map_err(|e| Error::Receiver(e.to_string()))?;
    map.write().unwrap().update(one);
    Ok(())
}

/// Runs `kubectl bpc sink`: the receiver until Ctrl-C, `--duration`
/// or `--count`, then its report; exit 0, or 1 when an `--expect` fails.
/// With `--map-watch`, `kube` names the cluster and scope whose map labels
/// the streams and paths while the receiver runs (connected only then).
pub async fn run(args: &SinkArgs, kube: &KubeArgs) -> Result<ExitCode, Error> {
    let receive = args.receive.clone();
    let listen = receive.listen;
    let shared = SharedMap::default();
    let watcher = if args.map_watch {
        let kube = kube.connect().await?;
        let map = shared.clone();
        Some(tokio::spawn(async move {
            let result = crate::map::watch(&kube.client, kube.scope(), |ev| apply_map_event(&map, &ev)).await;
            if let Err(e) = result {
                eprintln!("warning: map watch stopped: {e}; labels stay as they were");
            }
        }))
    } else {
        None
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = stop.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // The receiver's loop blocks (it polls its thread); keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let mut shown = bpc_receiver::receive::StderrProgress::new(receive.quiet);
        let received =
            bpc_receiver::receive::run_receive_with(&receive, Some(shared), &stop, &mut |p| shown.show(p))?;
        drop(shown);
        received.print(&mut std::io::stdout().lock(), &mut std::io::stderr())
    })
    .await
    .map_err(|e| Error::Receiver(e.to_string()))?
    .map_err(|e| match e {
        bpc_receiver::Error::Socket { .. } => receiver_error(e, listen),
        bpc_receiver::Error::Invalid { .. } => Error::Usage(e.to_string()),
        // A file or pcap that cannot be written is the receiver's failure, not a usage error.
        bpc_receiver::Error::File { .. } | bpc_receiver::Error::Pcap(_) => Error::Receiver(e.to_string()),
    });
    ctrl_c.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpc_wire::{Direction, GreProfile, WorkloadKey};
    use socket2::{Domain, Protocol, Socket, Type};

    fn send(key: u32, seqs: impl Iterator<Item = u32>, profile: GreProfile) {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
        let dst = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
        let mut pkt = [0u8; 16 + 60];
        for seq in seqs {
            let n = profile.write_header(&mut pkt, key, seq, Direction::Outbound).unwrap();
            // An Ethernet/IPv4 header is not needed: the receiver counts any TEB frame of 14+ bytes.
            socket.send_to(&pkt[..n + 60], &dst).unwrap();
        }
    }

    #[test]
    fn tally_reports_streams_of_the_sim_receiver_with_sequence_loss() {
        let key = WorkloadKey::from_workload("ci", "deployment", &format!("tally-{}", std::process::id()));
        let tally = GreTally::start("127.0.0.1".parse().unwrap()).expect("raw GRE socket (run as root)");
        send(key.0, [0, 1, 2, 5].into_iter(), GreProfile::Standard);
        let mut snap = Vec::new();
        for _ in 0..100 {
            snap = tally.snapshot();
            if snap.iter().any(|s| s.workload_key() == Some(&key.to_string()) && s.packets == 4) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = snap
            .iter()
            .find(|s| s.workload_key() == Some(&key.to_string()))
            .unwrap_or_else(|| panic!("no stream {key} in {snap:?}"));
        assert_eq!(
            (s.packets, s.lost, s.profile, s.bytes),
            (4, 2, bpc_contract::stream::ReceivedProfile::Standard, 240)
        );
        assert_eq!(s.source.to_string(), "127.0.0.1");
    }

    #[test]
    fn map_events_label_new_addresses_and_deletes_keep_the_last_label() {
        let shared = SharedMap::default();
        let entry: crate::map::MapEntry = serde_json::from_value(serde_json::json!({"type": "pod",
            "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "api", "key": "0x2"}))
        .unwrap();
        let ip = "198.18.1.2".parse().unwrap();
        apply_map_event(&shared, &MapEvent { event: MapEventKind::Add, entry: entry.clone() }).unwrap();
        assert_eq!(shared.read().unwrap().peer(&ip).unwrap().name, "api");
        assert_eq!(
            shared.read().unwrap().name(2, bpc_contract::stream::ReceivedProfile::Standard),
            Some("shop/deployment/api")
        );
        apply_map_event(&shared, &MapEvent { event: MapEventKind::Delete, entry: entry.clone() }).unwrap();
        assert_eq!(shared.read().unwrap().peer(&ip).unwrap().name, "api");
        let mut db = entry;
        db.workload = "db".into();
        apply_map_event(&shared, &MapEvent { event: MapEventKind::Add, entry: db }).unwrap();
        assert_eq!(shared.read().unwrap().peer(&ip).unwrap().name, "db");
    }

    #[test]
    fn listening_on_an_address_that_is_not_local_is_a_usage_error() {
        let err = GreTally::start("198.18.255.254".parse().unwrap()).unwrap_err();
        assert!(matches!(&err, Error::Usage(m) if m.contains("local address")), "{err}");
    }
}
