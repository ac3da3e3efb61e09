//! `kubectl bpc sink`: a GRE receiver run in-process, for a laptop or the
//! host of a kind cluster, and the receiver `verify` embeds.
//!
//! The brief is to embed the bpc-sim receiver (`bpc_sim::receive`); until that
//! library lands this module carries a small receiver of its own ([`GreTally`]):
//! a raw IPPROTO_GRE socket (needs CAP_NET_RAW), streams keyed by GRE key and
//! source address, sequence accounting by [`bpc_wire::SequenceTracker`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bpc_wire::{GrePacket, IPPROTO_GRE, SequenceTracker, StreamProfile, WorkloadKey};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;

/// Arguments of `kubectl bpc sink`.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Local IPv4 address to receive GRE on (raw socket: needs root or CAP_NET_RAW).
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// Seconds between reports.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Report format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = SinkFormat::Table)]
    pub output: SinkFormat,
}

/// Report format of `sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SinkFormat {
    /// One table per report.
    #[default]
    Table,
    /// One JSON array per line per report.
    Json,
}

/// Counters of one received stream (one agent process of one workload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// GRE key (`0x%08x`), null when the packets carry none.
    pub key: Option<String>,
    /// Source address (the pod IP).
    pub source: IpAddr,
    /// `standard`, `netis` or `anonymous`.
    pub profile: &'static str,
    /// GRE packets received.
    pub packets: u64,
    /// GRE payload bytes received.
    pub bytes: u64,
    /// Sequence numbers missing (standard profile only).
    pub lost: u64,
    /// Packets that arrived out of order.
    pub reordered: u64,
    /// Duplicated packets.
    pub duplicated: u64,
    /// Times the sender restarted its numbering.
    pub restarts: u64,
    /// Packets that failed to parse as GRE from this source.
    pub malformed: u64,
}

#[derive(Debug)]
struct Stream {
    profile: &'static str,
    packets: u64,
    bytes: u64,
    malformed: u64,
    tracker: Option<SequenceTracker>,
}

type Streams = HashMap<(Option<u32>, IpAddr), Stream>;

/// A running GRE receiver; stops (and joins its thread) on drop.
#[derive(Debug)]
pub struct GreTally {
    streams: Arc<Mutex<Streams>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

impl GreTally {
    /// Opens the raw GRE socket on `listen` and starts receiving.
    pub fn start(listen: IpAddr) -> Result<Self, Error> {
        let IpAddr::V4(v4) = listen else {
            return Err(Error::Usage(format!(
                "sink on {listen}: only IPv4 is supported by the embedded receiver; use an IPv4 address"
            )));
        };
        let socket =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE as i32))).map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Error::Usage(format!(
                        "cannot open a raw GRE socket ({e}): run as root or grant CAP_NET_RAW \
                     (sudo setcap cap_net_raw+ep $(which kubectl-bpc))"
                    ))
                } else {
                    Error::Receiver(format!("raw GRE socket: {e}"))
                }
            })?;
        if !v4.is_unspecified() {
            socket.bind(&SocketAddr::new(listen, 0).into()).map_err(|e| {
                Error::Usage(format!("cannot receive on {listen}: {e} (is it a local address?)"))
            })?;
        }
        // A bounded wait so the thread notices `stop` promptly.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| Error::Receiver(e.to_string()))?;
        let _ = socket.set_recv_buffer_size(8 << 20);
        let streams = Arc::new(Mutex::new(Streams::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (streams, stop) = (streams.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bpc-sink".into())
                .spawn(move || receive_loop(socket, &streams, &stop))
                .map_err(|e| Error::Receiver(e.to_string()))?
        };
        Ok(GreTally { streams, stop, thread: Some(thread), started: Instant::now() })
    }

    /// Current counters of every stream, sorted by source then key.
    pub fn snapshot(&self) -> Vec<StreamStats> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<StreamStats> = streams
            .iter()
            .map(|((key, source), s)| {
                let c = s.tracker.as_ref().map(|t| t.counters()).unwrap_or_default();
                StreamStats {
                    key: key.map(|k| WorkloadKey(k).to_string()),
                    source: *source,
                    profile: s.profile,
                    packets: s.packets,
                    bytes: s.bytes,
                    lost: c.lost,
                    reordered: c.reordered,
                    duplicated: c.duplicated,
                    restarts: c.restarts,
                    malformed: s.malformed,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.source, &a.key).cmp(&(b.source, &b.key)));
        out
    }

    /// Time since the receiver started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for GreTally {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive_loop(mut socket: Socket, streams: &Mutex<Streams>, stop: &AtomicBool) {
    // One buffer for the life of the thread: no allocation per packet.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let n = match socket.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        account(&buf[..n], streams);
    }
}

/// Accounts one datagram as delivered by an IPv4 raw socket (IP header first).
fn account(datagram: &[u8], streams: &Mutex<Streams>) {
    if datagram.len() < 20 || datagram[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(datagram[0] & 0x0f) * 4;
    let source = IpAddr::V4(Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]));
    let mut streams = streams.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gre) = datagram.get(ihl..).and_then(|g| GrePacket::parse(g).ok()) else {
        let s = streams.entry((None, source)).or_insert_with(|| Stream::new("anonymous"));
        s.malformed += 1;
        return;
    };
    let (key, profile, sequence) = match StreamProfile::of(&gre) {
        StreamProfile::Standard { key, sequence } => (Some(key), "standard", Some(sequence)),
        StreamProfile::Netis(k) => (Some(k.to_key()), "netis", None),
        StreamProfile::Anonymous => (None, "anonymous", None),
    };
    let s = streams.entry((key, source)).or_insert_with(|| Stream::new(profile));
    s.packets += 1;
    s.bytes += gre.payload.len() as u64;
    if let Some(seq) = sequence {
        s.tracker.get_or_insert_with(SequenceTracker::new).observe(seq);
    }
}

impl Stream {
    fn new(profile: &'static str) -> Self {
        Stream { profile, packets: 0, bytes: 0, malformed: 0, tracker: None }
    }
}

/// Writes a sink report.
pub fn render(streams: &[StreamStats], format: SinkFormat, out: &mut impl Write) -> Result<(), Error> {
    match format {
        SinkFormat::Json => {
            serde_json::to_writer(&mut *out, streams).map_err(|e| Error::Encode(e.to_string()))?;
            writeln!(out)?;
        }
        SinkFormat::Table => {
            let header = [
                "SOURCE",
                "KEY",
                "PROFILE",
                "PACKETS",
                "BYTES",
                "LOST",
                "REORDERED",
                "DUPLICATED",
                "RESTARTS",
            ];
            let rows: Vec<[String; 9]> = streams
                .iter()
                .map(|s| {
                    [
                        s.source.to_string(),
                        s.key.clone().unwrap_or_else(|| "-".into()),
                        s.profile.to_owned(),
                        s.packets.to_string(),
                        s.bytes.to_string(),
                        s.lost.to_string(),
                        s.reordered.to_string(),
                        s.duplicated.to_string(),
                        s.restarts.to_string(),
                    ]
                })
                .collect();
            crate::map::write_table(out, &header, &rows)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Runs `kubectl bpc sink`: receives until Ctrl-C or `--duration`, printing
/// a report every `--interval` seconds and once at the end.
pub async fn run(args: &SinkArgs) -> Result<ExitCode, Error> {
    let tally = GreTally::start(args.listen)?;
    eprintln!("receiving GRE on {} (Ctrl-C to stop)", args.listen);
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + Duration::from_secs(d));
    let mut ticker = tokio::time::interval(Duration::from_secs(args.interval.max(1)));
    ticker.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => render(&tally.snapshot(), args.output, &mut std::io::stdout().lock())?,
            _ = tokio::signal::ctrl_c() => break,
            _ = until_deadline => break,
        }
    }
    render(&tally.snapshot(), args.output, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpc_wire::{Direction, GreProfile};

    fn datagram(src: [u8; 4], key: u32, seq: u32, profile: GreProfile) -> Vec<u8> {
        let mut d = vec![0u8; 20];
        d[0] = 0x45;
        d[9] = 47;
        d[12..16].copy_from_slice(&src);
        let mut hdr = [0u8; 16];
        let n = profile.write_header(&mut hdr, key, seq, Direction::Outbound).unwrap();
        d.extend_from_slice(&hdr[..n]);
        d.extend_from_slice(&[0xaa; 60]);
        d
    }

    #[test]
    fn streams_are_split_by_key_and_source_and_gaps_count_as_lost() {
        let streams = Mutex::new(Streams::new());
        for seq in [0, 1, 2, 5] {
            account(&datagram([198, 18, 1, 2], 0x1234abcd, seq, GreProfile::Standard), &streams);
        }
        account(&datagram([198, 18, 1, 3], 0x1234abcd, 0, GreProfile::Standard), &streams);
        account(&datagram([198, 18, 1, 3], 7, 0, GreProfile::Netis), &streams);
        account(&[0x45, 0, 0, 0, 0, 0, 0, 0, 0, 47, 0, 0, 198, 18, 1, 9, 0, 0, 0, 0, 0x00, 0x07], &streams);
        let tally = GreTally {
            streams: Arc::new(streams),
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
            started: Instant::now(),
        };
        let snap = tally.snapshot();
        let row = |src: &str, key: Option<&str>| {
            snap.iter()
                .find(|s| s.source.to_string() == src && s.key.as_deref() == key)
                .unwrap_or_else(|| panic!("no stream {src} {key:?} in {snap:?}"))
        };
        let a = row("198.18.1.2", Some("0x1234abcd"));
        assert_eq!((a.packets, a.lost, a.profile, a.bytes), (4, 2, "standard", 240));
        assert_eq!(row("198.18.1.3", Some("0x1234abcd")).packets, 1);
        let netis = bpc_wire::NetisKey { keybit: 7, direction: Direction::Outbound }.to_key();
        assert_eq!(row("198.18.1.3", Some(&WorkloadKey(netis).to_string())).profile, "netis");
        assert_eq!(row("198.18.1.9", None).malformed, 1);
        assert_eq!(snap.len(), 4);
    }

    #[test]
    fn ipv6_listen_address_is_a_usage_error() {
        assert!(matches!(GreTally::start("::1".parse().unwrap()), Err(Error::Usage(_))));
    }
}
