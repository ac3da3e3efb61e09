//! `--write`: the inner frames to a pcap file, or pcapng with one interface
//! per key, rotated every `--rotate-mb` megabytes. Every write error is
//! kept and ends the run: a capture that silently stops growing is worse
//! than one that stops with the reason.
//!
//! A frame's time is when its GRE packet reached the receiver (the kernel's
//! SO_TIMESTAMPNS stamp, see `receiver`), not when the agent captured it:
//! GRE carries no capture time. Classic pcap holds it in microseconds (the
//! standard magic, what every reader expects); pcapng in nanoseconds, which
//! each interface block declares with `if_tsresol`.

use std::collections::HashMap;
use std::io::BufWriter;
use std::time::{SystemTime, UNIX_EPOCH};

use bpc_contract::stream::ReceivedProfile;
use bpc_wire::EthernetFrame;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

use crate::Error;
use crate::map::SharedMap;
use crate::receiver::FrameSink;

/// The snap length declared in the file headers: the largest GRE payload.
const SNAPLEN: u32 = bpc_contract::defaults::SNAPLEN;
/// `if_tsresol` for 10^-9 s: the unit pcap-file's EnhancedPacketBlock writes.
pub const NANOSECONDS: u8 = 9;
/// Bytes a record adds to a frame (pcap record header, roughly an EPB's), for rotation.
const RECORD_OVERHEAD: u64 = 32;

type File = BufWriter<std::fs::File>;

enum Writer {
    Pcap(PcapWriter<File>),
    /// pcapng: one interface per key, in order of first appearance.
    PcapNg(PcapNgWriter<File>, HashMap<u32, u32>),
}

/// pcap-file's I/O errors say only "Error reading bytes": keep the OS error and name the file.
fn pcap_error(path: &str) -> impl Fn(pcap_file::PcapError) -> Error + '_ {
    move |e| match e {
        pcap_file::PcapError::IoError(source) => Error::File { path: path.to_string(), source },
        other => Error::Pcap(other),
    }
}

impl Writer {
    /// Flushes what the buffer holds: a dropped BufWriter would swallow the error.
    fn finish(self, path: &str) -> Result<(), Error> {
        let buffered = match self {
            Writer::Pcap(w) => w.into_writer(),
            Writer::PcapNg(w, _) => w.into_inner(),
        };
        buffered
            .into_inner()
            .map(drop)
            .map_err(|e| Error::File { path: path.to_string(), source: e.into_error() })
    }
}

/// The `--write` file being written.
pub struct PcapOut {
    path: String,
    rotate_mb: Option<u64>,
    written: u64,
    index: u32,
    map: SharedMap,
    /// The open file and its name.
    writer: Option<(Writer, String)>,
    /// The host names the open pcapng file has in its Name Resolution Blocks,
    /// and the map generation they were taken at.
    names: (crate::names::Written, Option<u64>),
}

impl PcapOut {
    /// Creates `path` (pcapng when it ends in `.pcapng`) and writes its header.
    pub fn create(path: &str, rotate_mb: Option<u64>, map: SharedMap) -> Result<Self, Error> {
        let mut out = PcapOut {
            path: path.to_string(),
            rotate_mb,
            written: 0,
            index: 0,
            map,
            writer: None,
            names: Default::default(),
        };
        out.open()?;
        Ok(out)
    }

    /// Closes the current file (flushing it) and opens the next: FILE, then FILE.1, FILE.2...
    fn open(&mut self) -> Result<(), Error> {
        self.finish()?;
        let path = if self.index == 0 { self.path.clone() } else { format!("{}.{}", self.path, self.index) };
        let f = std::fs::File::create(&path).map_err(|source| Error::File { path: path.clone(), source })?;
        let f = BufWriter::new(f);
        let writer = if self.path.ends_with(".pcapng") {
            Writer::PcapNg(PcapNgWriter::new(f).map_err(pcap_error(&path))?, HashMap::new())
        } else {
            let header = PcapHeader { snaplen: SNAPLEN, ..Default::default() };
            Writer::Pcap(PcapWriter::with_header(f, header).map_err(pcap_error(&path))?)
        };
        self.writer = Some((writer, path));
        self.written = 0;
        // A new file names every host again: each file stands alone.
        self.names = Default::default();
        Ok(())
    }

    /// Flushes and closes the current file.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.writer.take() {
            Some((w, path)) => w.finish(&path),
            None => Ok(()),
        }
    }
}

impl FrameSink for PcapOut {
    fn frame(&mut self, ts: SystemTime, key: u32, frame: &[u8]) -> Result<(), Error> {
        if let Some(limit) = self.rotate_mb
            && self.written >= limit * 1_000_000
        {
            self.index += 1;
            self.open()?;
        }
        let orig = original_len(frame);
        let ts = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
        match self.writer.as_mut() {
            Some((Writer::Pcap(w), path)) => {
                w.write_packet(&PcapPacket::new(ts, orig, frame)).map_err(pcap_error(path))?;
            }
            Some((Writer::PcapNg(w, ifaces), path)) => {
                // Names before the packets they label: a changed map (a new pod,
                // a reused IP) adds a Name Resolution Block with what changed.
                let map = self.map.read().unwrap();
                if self.names.1 != Some(map.generation()) {
                    self.names.1 = Some(map.generation());
                    let fresh = self.names.0.fresh(map.hosts());
                    drop(map);
                    if !fresh.is_empty() {
                        w.write_pcapng_block(crate::names::block(&fresh)).map_err(pcap_error(path))?;
                    }
                } else {
                    drop(map);
                }
                let id = match ifaces.get(&key) {
                    Some(id) => *id,
                    None => {
                        // A new key: declare its interface, named by workload when mapped
                        // (the frame's profile is not known here: a standard key first,
                        // else a netis keybit).
                        let map = self.map.read().unwrap();
                        let workload = [ReceivedProfile::Standard, ReceivedProfile::Netis]
                            .into_iter()
                            .find_map(|p| map.name(key, p))
                            .map(str::to_string);
                        drop(map);
                        let name = workload.clone().unwrap_or_else(|| bpc_wire::WorkloadKey(key).to_string());
                        // GRE carries the workload's key, not the pod: one interface per
                        // workload, described with the key it streams under.
                        let description = workload.map(|w| {
                            InterfaceDescriptionOption::IfDescription(
                                format!("workload {w} (GRE key {})", bpc_wire::WorkloadKey(key)).into(),
                            )
                        });
                        w.write_pcapng_block(InterfaceDescriptionBlock {
                            linktype: DataLink::ETHERNET,
                            snaplen: SNAPLEN,
                            options: vec![
                                InterfaceDescriptionOption::IfName(name.into()),
                                // pcap-file writes EPB timestamps in nanoseconds; without
                                // this option a reader takes them as microseconds (the
                                // pcapng default) and dates the capture in the year 58900.
                                InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
                            ]
                            .into_iter()
                            .chain(description)
                            .collect(),
                        })
                        .map_err(pcap_error(path))?;
                        let id = ifaces.len() as u32;
                        ifaces.insert(key, id);
                        id
                    }
                };
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: id,
                    timestamp: ts,
                    original_len: orig,
                    data: frame.into(),
                    options: Vec::new(),
                })
                .map_err(pcap_error(path))?;
            }
            None => {}
        }
        self.written += frame.len() as u64 + RECORD_OVERHEAD;
        Ok(())
    }
}

/// Length of the frame before truncation, from the inner IP header's length
/// (never less than what arrived: Ethernet padding is kept).
pub fn original_len(frame: &[u8]) -> u32 {
    let announced = EthernetFrame::parse(frame).ok().and_then(|f| f.announced_len()).unwrap_or(0);
    frame.len().max(announced) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::WorkloadMap;
    use bpc_wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};
    use bpc_wire::{EthernetHeader, Ipv4Header};
    use pcap_file::pcap::PcapReader;
    use std::time::Duration;

    fn ipv4_frame(len: usize, payload_len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        let eth = EthernetHeader {
            destination: [2, 0, 0, 0, 0, 2],
            source: [2, 0, 0, 0, 0, 1],
            ethertype: ETHERTYPE_IPV4,
        };
        eth.encode(&mut f).unwrap();
        let ip = Ipv4Header {
            source: [198, 18, 0, 1].into(),
            destination: [198, 18, 0, 2].into(),
            protocol: 17,
            ttl: 64,
            identification: 0,
            dont_fragment: false,
            payload_len,
        };
        ip.encode(&mut f[14..]).unwrap();
        f
    }

    #[test]
    fn original_length_comes_from_the_inner_ipv4_header_when_truncated() {
        assert_eq!(original_len(&ipv4_frame(64, 1480)), 14 + 1500);
    }

    #[test]
    fn original_length_skips_vlan_tags_and_reads_ipv6_payload_length() {
        let mut f = vec![0u8; 80];
        f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[18] = 0x60;
        f[22..24].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(original_len(&f), 18 + 40 + 1000);
    }

    #[test]
    fn original_length_of_a_complete_frame_is_its_length() {
        assert_eq!(original_len(&ipv4_frame(60, 8)), 60, "Ethernet padding is kept");
        assert_eq!(original_len(&[0u8; 20]), 20, "not IP: the length that arrived");
    }

    #[test]
    fn a_file_that_cannot_be_created_is_an_error_naming_it() {
        let err = PcapOut::create("/nonexistent/dir/x.pcap", None, SharedMap::default()).err().unwrap();
        assert!(matches!(&err, Error::File { path, .. } if path == "/nonexistent/dir/x.pcap"), "{err}");
    }

    #[test]
    fn a_full_disk_is_reported_not_swallowed() {
        let mut out = PcapOut::create("/dev/full", None, SharedMap::default()).unwrap();
        let frame = ipv4_frame(1500, 1466);
        // The BufWriter holds the first few KB; the error comes with a flush.
        let wrote: Result<Vec<()>, Error> =
            (0..100).map(|_| out.frame(SystemTime::now(), 1, &frame)).collect();
        let err = wrote.and_then(|_| out.finish()).unwrap_err();
        assert!(err.to_string().starts_with("/dev/full: No space left"), "{err}");
    }

    /// A writer to `name` in a new directory (gone with the returned
    /// guard) rotating after 1 MB, and a frame of 1000 bytes to feed it.
    fn rotating(name: &str) -> (tempfile::TempDir, String, PcapOut, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name).to_str().unwrap().to_string();
        let out = PcapOut::create(&path, Some(1), SharedMap::default()).unwrap();
        (dir, path, out, ipv4_frame(1000, 966))
    }

    #[test]
    fn rotation_writes_numbered_files_each_with_a_header() {
        let (_dir, path, mut out, frame) = rotating("r.pcap");
        let path = path.as_str();
        for _ in 0..1500 {
            out.frame(SystemTime::now(), 1, &frame).unwrap();
        }
        out.finish().unwrap();
        let count = |p: &str| {
            let data = std::fs::read(p).unwrap();
            let mut r = PcapReader::new(&data[..]).unwrap();
            let mut n = 0;
            while let Some(p) = r.next_packet() {
                p.unwrap();
                n += 1;
            }
            n
        };
        assert_eq!(count(path) + count(&format!("{path}.1")), 1500);
        assert!(!std::path::Path::new(&format!("{path}.2")).exists());
    }

    #[test]
    fn every_rotated_pcapng_declares_nanosecond_interfaces_and_tshark_reads_the_times_written() {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let (_dir, path, mut out, frame) = rotating("r.pcapng");
        let path = path.as_str();
        let time = |i: u32| UNIX_EPOCH + Duration::new(1_764_000_000, 1) + Duration::from_micros(10) * i;
        for i in 0..1500 {
            out.frame(time(i), 1 + i % 2, &frame).unwrap();
        }
        out.finish().unwrap();
        let second = format!("{path}.1");
        for file in [path, &second] {
            let data = std::fs::read(file).unwrap();
            let mut r = PcapNgReader::new(&data[..]).unwrap();
            let mut interfaces = 0;
            while let Some(b) = r.next_block() {
                if let Block::InterfaceDescription(idb) = b.unwrap() {
                    interfaces += 1;
                    assert!(
                        idb.options.contains(&InterfaceDescriptionOption::IfTsResol(NANOSECONDS)),
                        "{file}"
                    );
                }
            }
            assert_eq!(interfaces, 2, "{file}: one interface per key, declared again in each file");
        }
        // The user's view of the second file's first frame: the time written, to the nanosecond.
        let out = std::process::Command::new("tshark")
            .args(["-r", &second, "-c", "1", "-T", "fields", "-e", "frame.time_epoch"])
            .output()
            .unwrap();
        let first = std::str::from_utf8(&out.stdout).unwrap().trim();
        let frames_in_first_file = data_frames(path);
        let want = time(frames_in_first_file).duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(first, format!("{}.{:09}", want.as_secs(), want.subsec_nanos()));
    }

    /// Enhanced Packet Blocks in a pcapng file.
    fn data_frames(path: &str) -> u32 {
        let data = std::fs::read(path).unwrap();
        let mut r = pcap_file::pcapng::PcapNgReader::new(&data[..]).unwrap();
        let mut n = 0;
        while let Some(b) = r.next_block() {
            n += u32::from(matches!(b.unwrap(), pcap_file::pcapng::Block::EnhancedPacket(_)));
        }
        n
    }

    #[test]
    fn the_pcapng_names_the_maps_addresses_before_their_packets_and_again_when_an_ip_changes_hands() {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let row = |ip: &str, pod: &str| {
            format!(
                r#"{{"type": "pod", "ip": "{ip}", "namespace": "shop", "kind": "Deployment", "workload": "web",
                    "key": "0x00000001", "pod": "{pod}"}}"#
            )
        };
        let map = SharedMap::default();
        map.write()
            .unwrap()
            .update(WorkloadMap::from_json(&format!("[{}]", row("198.18.0.1", "web-a"))).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.pcapng");
        let path = path.to_str().unwrap();
        let mut out = PcapOut::create(path, None, map.clone()).unwrap();
        let frame = ipv4_frame(60, 26);
        out.frame(SystemTime::now(), 1, &frame).unwrap();
        out.frame(SystemTime::now(), 1, &frame).unwrap();
        // web-a is replaced; web-b gets its IP.
        map.write()
            .unwrap()
            .update(WorkloadMap::from_json(&format!("[{}]", row("198.18.0.1", "web-b"))).unwrap());
        out.frame(SystemTime::now(), 1, &frame).unwrap();
        out.finish().unwrap();
        let data = std::fs::read(path).unwrap();
        let mut r = PcapNgReader::new(&data[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(match b.unwrap() {
                Block::NameResolution(n) => format!("names {}", n.records.len()),
                Block::InterfaceDescription(i) => format!("interface {:?}", &i.options[1..]),
                Block::EnhancedPacket(_) => "packet".into(),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            blocks,
            [
                "names 1",
                r#"interface [IfTsResol(9), IfDescription("workload shop/deployment/web (GRE key 0x00000001)")]"#,
                "packet",
                "packet",
                "names 1",
                "packet"
            ]
        );
        let out = std::process::Command::new("tshark")
            .args(["-N", "n", "-o", "nameres.use_external_name_resolver:FALSE", "-r", path])
            .args(["-T", "fields", "-e", "ip.src_host"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "web-a\nweb-a\nweb-b\n",
            "names at each packet's time"
        );
    }
}
