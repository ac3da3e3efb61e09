//! The pcapng streams of `kubectl bpc capture -w`: each agent's stdout is cut
//! into blocks ([`Demux`]), and the packets of all pods are merged into one
//! pcapng with one interface per pod, in time order ([`Merger`]).
//!
//! Time order across live streams needs a watermark: a packet is written only
//! once every other live stream has shown it will send nothing older. Each
//! agent writes an Interface Statistics Block every second, stamped with its
//! clock; frames still in a ring block may be older than that stamp by up to
//! the block timeout and one loop pass, hence [`STATS_SLACK_NS`].

use std::collections::VecDeque;
use std::io::{self, Write};

use bpc_wire::pcapng::{Interface, PcapngWriter, Statistics};
use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
use pcap_file::pcapng::{Block, PcapNgParser};

use crate::Error;

/// How much older than its last statistics block a stream's next packet may be.
pub const STATS_SLACK_NS: u64 = 1_000_000_000;

/// Counters from an agent's Interface Statistics Block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// Frames the filter accepted.
    pub received: u64,
    /// Dropped by the interface, the kernel ring or the agent's caps.
    pub drops: u64,
    /// Written to the stream.
    pub delivered: u64,
}

/// One thing a pod's stream carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame.
    Packet {
        /// Capture time, nanoseconds since the epoch.
        ts: u64,
        /// Length on the wire.
        original_len: u32,
        /// The bytes captured.
        data: Vec<u8>,
    },
    /// A statistics block.
    Stats {
        /// When the agent wrote it, nanoseconds since the epoch.
        ts: u64,
        /// Its counters.
        counters: AgentCounters,
    },
}

impl Item {
    /// Where the item sorts: a statistics block as early as the packets that
    /// may still follow it.
    fn order(&self) -> u64 {
        match self {
            Item::Packet { ts, .. } => *ts,
            Item::Stats { ts, .. } => ts.saturating_sub(STATS_SLACK_NS),
        }
    }
}

/// Cuts one agent's byte stream into [`Item`]s, whatever the chunking.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
    parser: Option<PcapNgParser>,
}

fn parse_error(e: pcap_file::PcapError) -> Error {
    Error::Workload(format!("the capture stream is not valid pcapng: {e}"))
}

/// A block that could not be written: the error pcapng output has always had.
fn write_error(e: io::Error) -> Error {
    Error::Pcap(pcap_file::PcapError::IoError(e))
}

impl Demux {
    /// Adds bytes and returns the items now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Item>, Error> {
        self.buf.extend_from_slice(bytes);
        let mut items = Vec::new();
        let mut used = 0;
        loop {
            let rest = &self.buf[used..];
            let Some(parser) = self.parser.as_mut() else {
                match PcapNgParser::new(rest) {
                    Ok((rem, parser)) => {
                        used += rest.len() - rem.len();
                        self.parser = Some(parser);
                        continue;
                    }
                    Err(pcap_file::PcapError::IncompleteBuffer) => break,
                    Err(e) => return Err(parse_error(e)),
                }
            };
            match parser.next_block(rest) {
                Ok((rem, block)) => {
                    let len = rest.len() - rem.len();
                    match block {
                        Block::EnhancedPacket(p) => items.push(Item::Packet {
                            ts: p.timestamp.as_nanos() as u64,
                            original_len: p.original_len,
                            data: p.data.into_owned(),
                        }),
                        Block::InterfaceStatistics(s) => {
                            let mut c = AgentCounters::default();
                            for o in &s.options {
                                match o {
                                    InterfaceStatisticsOption::IsbIfRecv(n) => c.received = *n,
                                    InterfaceStatisticsOption::IsbIfDrop(n)
                                    | InterfaceStatisticsOption::IsbOsDrop(n) => c.drops += *n,
                                    InterfaceStatisticsOption::IsbUsrDeliv(n) => c.delivered = *n,
                                    _ => {}
                                }
                            }
                            items.push(Item::Stats { ts: s.timestamp, counters: c });
                        }
                        _ => {}
                    }
                    used += len;
                }
                Err(pcap_file::PcapError::IncompleteBuffer) => break,
                Err(e) => return Err(parse_error(e)),
            }
        }
        self.buf.drain(..used);
        Ok(items)
    }

    /// Bytes of an unfinished block (a stream that ended here was cut mid-block).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Per-pod totals for the live line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets received from the pod.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// The agent's last reported drops.
    pub drops: u64,
}

#[derive(Default)]
struct Stream {
    queue: VecDeque<Item>,
    watermark: u64,
    done: bool,
    totals: Totals,
}

/// One pod's interface in the merged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    /// `NAMESPACE/POD`.
    pub name: String,
    /// What the pod is, e.g. `pod of deployment/web`.
    pub description: Option<String>,
}

/// Merges the pods' items into one pcapng on `W`.
pub struct Merger<W: Write> {
    writer: PcapngWriter<W>,
    streams: Vec<Stream>,
}

impl<W: Write> Merger<W> {
    /// Writes the section header and one interface per pod (named by `names`).
    pub fn new(out: W, names: &[String], snaplen: u32) -> Result<Merger<W>, Error> {
        let interfaces: Vec<PodInterface> =
            names.iter().map(|n| PodInterface { name: n.clone(), description: None }).collect();
        Self::with_interfaces(out, &interfaces, snaplen)
    }

    /// Writes the section header and one interface per pod, described.
    pub fn with_interfaces(out: W, interfaces: &[PodInterface], snaplen: u32) -> Result<Merger<W>, Error> {
        let mut writer = PcapngWriter::new(out).map_err(write_error)?;
        for i in interfaces {
            let description = i.description.as_deref();
            writer.interface(&Interface { name: &i.name, description, snaplen }).map_err(write_error)?;
        }
        writer.get_mut().flush()?;
        let streams = interfaces.iter().map(|_| Stream::default()).collect();
        Ok(Merger { writer, streams })
    }

    /// Writes a Name Resolution Block with `hosts` now: before every packet
    /// not yet written (nothing when `hosts` is empty).
    pub fn names(&mut self, hosts: &[(std::net::IpAddr, String)]) -> Result<(), Error> {
        if !hosts.is_empty() {
            self.writer.names(hosts).map_err(write_error)?;
        }
        Ok(())
    }

    /// Queues stream `i`'s items.
    pub fn push(&mut self, i: usize, items: Vec<Item>) {
        let s = &mut self.streams[i];
        for item in items {
            match &item {
                Item::Packet { ts, original_len, .. } => {
                    s.totals.packets += 1;
                    s.totals.bytes += u64::from(*original_len);
                    s.watermark = s.watermark.max(*ts);
                }
                Item::Stats { ts, counters } => {
                    s.totals.drops = counters.drops;
                    s.watermark = s.watermark.max(ts.saturating_sub(STATS_SLACK_NS));
                }
            }
            s.queue.push_back(item);
        }
    }

    /// Marks stream `i` as ended: it no longer holds the others back.
    pub fn finish(&mut self, i: usize) {
        self.streams[i].done = true;
    }

    /// Per-pod totals.
    pub fn totals(&self, i: usize) -> Totals {
        self.streams[i].totals
    }

    /// Writes every item that is safe to write now, oldest first, and
    /// flushes; returns how many were written.
    pub fn drain(&mut self) -> Result<usize, Error> {
        let mut written = 0;
        while let Some((i, ts)) = self
            .streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.queue.front().map(|it| (i, it.order())))
            .min_by_key(|&(_, ts)| ts)
        {
            let blocked = self
                .streams
                .iter()
                .enumerate()
                .any(|(j, s)| j != i && !s.done && s.queue.is_empty() && s.watermark < ts);
            if blocked {
                break;
            }
            let item = self.streams[i].queue.pop_front().expect("front exists");
            self.write(i as u32, item)?;
            written += 1;
        }
        self.writer.get_mut().flush()?;
        Ok(written)
    }

    fn write(&mut self, interface_id: u32, item: Item) -> Result<(), Error> {
        match item {
            Item::Packet { ts, original_len, data } => {
                self.writer.packet(interface_id, ts, original_len, &data)
            }
            // The agent's interface and ring drops arrive summed: no isb_ifdrop.
            Item::Stats { ts, counters } => {
                let statistics = Statistics {
                    received: counters.received,
                    interface_drops: None,
                    os_drops: counters.drops,
                    delivered: counters.delivered,
                };
                self.writer.statistics(interface_id, ts, &statistics)
            }
        }
        .map_err(write_error)
    }

    /// The output, once everything is written.
    pub fn into_inner(self) -> W {
        self.writer.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::PcapNgReader;

    /// A pcapng stream as an agent writes it: one interface, packets at `ts`
    /// (with one byte of payload each, equal to the index), a statistics block last.
    fn agent_stream(packets: &[u64], stats_ts: u64) -> Vec<u8> {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.interface(&Interface { name: "eth0", description: None, snaplen: 65535 }).unwrap();
        for (i, ts) in packets.iter().enumerate() {
            w.packet(0, *ts, 60, &[i as u8; 60]).unwrap();
        }
        let n = packets.len() as u64;
        let counters = Statistics { received: n + 3, interface_drops: Some(1), os_drops: 2, delivered: n };
        w.statistics(0, stats_ts, &counters).unwrap();
        w.into_inner()
    }

    fn read_back(bytes: &[u8]) -> (usize, Vec<(u32, u64)>) {
        let mut r = PcapNgReader::new(bytes).unwrap();
        let mut packets = Vec::new();
        let mut interfaces = 0;
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(_) => interfaces += 1,
                Block::EnhancedPacket(p) => packets.push((p.interface_id, p.timestamp.as_nanos() as u64)),
                _ => {}
            }
        }
        (interfaces, packets)
    }

    #[test]
    fn demux_yields_the_same_items_whatever_the_chunking() {
        let stream = agent_stream(&[10, 20, 30], 40);
        let whole = Demux::default().push(&stream).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(
            whole[3],
            Item::Stats { ts: 40, counters: AgentCounters { received: 6, drops: 3, delivered: 3 } }
        );
        for chunk in [1, 3, 7, 64] {
            let mut d = Demux::default();
            let mut items = Vec::new();
            for c in stream.chunks(chunk) {
                items.extend(d.push(c).unwrap());
            }
            assert_eq!(items, whole, "chunks of {chunk}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn a_stream_cut_mid_block_keeps_the_complete_blocks_and_reports_the_rest() {
        let stream = agent_stream(&[10, 20], 30);
        let mut d = Demux::default();
        let items = d.push(&stream[..stream.len() - 10]).unwrap();
        assert_eq!(items.len(), 2, "both packets, not the cut statistics block");
        assert!(d.pending() > 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_hang() {
        assert!(Demux::default().push(&[0x0a; 64]).is_err());
    }

    #[test]
    fn two_pods_merge_in_time_order_with_one_interface_each() {
        let names = vec!["shop/web-1".to_owned(), "shop/web-2".to_owned()];
        let mut m = Merger::new(Vec::new(), &names, 65535).unwrap();
        let a = Demux::default().push(&agent_stream(&[100, 300, 500], 3_000_000_000)).unwrap();
        let b = Demux::default().push(&agent_stream(&[200, 400], 3_000_000_000)).unwrap();
        m.push(0, a);
        // Stream 1 has said nothing yet: nothing of stream 0 may go out.
        assert_eq!(m.drain().unwrap(), 0);
        m.push(1, b);
        m.finish(0);
        m.finish(1);
        assert_eq!(m.drain().unwrap(), 7);
        assert_eq!(m.totals(0), Totals { packets: 3, bytes: 180, drops: 3 });
        let (interfaces, packets) = read_back(&m.into_inner());
        assert_eq!(interfaces, 2);
        assert_eq!(packets, vec![(0, 100), (1, 200), (0, 300), (1, 400), (0, 500)]);
    }

    #[test]
    fn the_merged_file_matches_its_golden_and_tshark_reads_the_nanosecond_times_written() {
        // `BPC_REGEN=1 cargo test -p kubectl-bpc --lib merge` rewrites the golden.
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pcapng/capture-merge.pcapng");
        let base = 1_764_000_000_123_456_789;
        let names = vec!["shop/web-1".to_owned(), "shop/web-2".to_owned()];
        let mut m = Merger::new(Vec::new(), &names, 65535).unwrap();
        m.push(
            0,
            Demux::default().push(&agent_stream(&[base, base + 2_000_001], base + 1_000_000_000)).unwrap(),
        );
        m.push(1, Demux::default().push(&agent_stream(&[base + 1_000_000], base + 1_000_000_000)).unwrap());
        m.finish(0);
        m.finish(1);
        m.drain().unwrap();
        bpc_netns::golden(golden, &m.into_inner(), "the merge");
        let fields = ["-T", "fields", "-e", "frame.time_epoch", "-e", "frame.interface_name"];
        let times: Vec<String> =
            bpc_netns::tshark(std::path::Path::new(golden), &fields).lines().map(str::to_owned).collect();
        let row = |ns: u64, name: &str| format!("{}.{:09}\t{name}", ns / 1_000_000_000, ns % 1_000_000_000);
        assert_eq!(
            times,
            [
                row(base, "shop/web-1"),
                row(base + 1_000_000, "shop/web-2"),
                row(base + 2_000_001, "shop/web-1")
            ]
        );
    }

    #[test]
    fn each_pod_interface_is_described_by_its_workload_and_names_come_before_the_packets_they_label() {
        let interfaces = [PodInterface {
            name: "shop/web-1".into(),
            description: Some("workload shop/deployment/web".into()),
        }];
        let mut m = Merger::with_interfaces(Vec::new(), &interfaces, 65535).unwrap();
        m.names(&[("198.19.1.5".parse().unwrap(), "web-1".into())]).unwrap();
        m.names(&[]).unwrap();
        m.push(0, Demux::default().push(&agent_stream(&[100], 200)).unwrap());
        m.finish(0);
        m.drain().unwrap();
        let bytes = m.into_inner();
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(match b.unwrap() {
                Block::InterfaceDescription(i) => format!("interface {:?}", i.options),
                Block::NameResolution(n) => format!("names {}", n.records.len()),
                Block::EnhancedPacket(_) => "packet".into(),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            blocks[0],
            r#"interface [IfName("shop/web-1"), IfTsResol(9), IfDescription("workload shop/deployment/web")]"#
        );
        assert_eq!(blocks[1..3], ["names 1", "packet"], "an empty name list writes no block");
    }

    #[test]
    fn a_quiet_stream_holds_back_only_what_is_newer_than_its_watermark() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut m = Merger::new(Vec::new(), &names, 65535).unwrap();
        m.push(0, vec![Item::Packet { ts: 5_000_000_000, original_len: 60, data: vec![0; 60] }]);
        // b's statistics at 7 s promise nothing older than 6 s: a's packet at 5 s goes out,
        // b's block waits for a to pass 6 s.
        m.push(1, vec![Item::Stats { ts: 7_000_000_000, counters: AgentCounters::default() }]);
        assert_eq!(m.drain().unwrap(), 1);
        m.push(0, vec![Item::Packet { ts: 6_500_000_000, original_len: 60, data: vec![0; 60] }]);
        assert_eq!(m.drain().unwrap(), 1, "b's block (sorted at 6 s) goes, a's 6.5 s waits");
        m.finish(1);
        assert_eq!(m.drain().unwrap(), 1);
    }
}
