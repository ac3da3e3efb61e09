//! `--write`: the capture as pcapng instead of GRE.
//!
//! One section, one Ethernet interface with nanosecond timestamps (the ring's
//! own resolution), one Enhanced Packet Block per frame, and an Interface
//! Statistics Block every second and at the end: a reader of the stream
//! (`kubectl bpc capture -w`) learns the agent's drops from the stream itself,
//! with no second connection to /stats, which an ephemeral container cannot
//! expose as a port.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use bpc_wire::Retagged;
use bpc_wire::pcapng::{Interface, PcapngWriter, Statistics};

use crate::capture::Frame;
use crate::config::WriteTarget;
use crate::error::{Error, Result};

/// Output buffer: large enough that a busy block becomes a few write(2)s,
/// small enough that little is lost if the reader vanishes.
const BUFFER: usize = 256 << 10;

/// Counters written into an Interface Statistics Block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames the filter accepted (isb_ifrecv).
    pub received: u64,
    /// Dropped by the interface before capture (isb_ifdrop).
    pub interface_drops: u64,
    /// Dropped by the kernel ring, or by the agent's own --max-pps/--max-mbps caps (isb_osdrop).
    pub os_drops: u64,
    /// Written to this stream (isb_usrdeliv).
    pub delivered: u64,
}

/// The pcapng stream being written.
pub struct PcapngOut {
    writer: PcapngWriter<BufWriter<File>>,
    /// A VLAN-tagged frame with its tag put back.
    scratch: Vec<u8>,
    /// Whether anything was written since the last flush.
    dirty: bool,
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { what: what.to_owned(), source }
}

impl PcapngOut {
    /// Opens `target` and writes the section and interface headers for `iface`.
    pub fn open(target: &WriteTarget, iface: &str, snaplen: u32) -> Result<PcapngOut> {
        let file = match target {
            // A duplicate of fd 1 as a File: std's Stdout is line-buffered and
            // would flush at every 0x0a byte of binary data.
            WriteTarget::Stdout => io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|source| Error::Io { what: "duplicate stdout for --write -".into(), source })?,
            WriteTarget::File(path) => File::create(path).map_err(|source| {
                Error::Config(format!("cannot create --write (BPC_WRITE) file {}: {source}", path.display()))
            })?,
        };
        let mut writer = PcapngWriter::new(BufWriter::with_capacity(BUFFER, file))
            .map_err(io_error("write the pcapng section header"))?;
        writer
            .interface(&Interface { name: iface, description: None, snaplen })
            .map_err(io_error("write the pcapng interface block"))?;
        let mut out = PcapngOut { writer, scratch: Vec::new(), dirty: true };
        // The headers go out at once: a reader (Wireshark) shows the
        // interface before the first packet arrives.
        out.flush()?;
        Ok(out)
    }

    /// Writes one frame, cut to `snaplen` bytes, with its 802.1Q tag put back.
    pub fn packet(&mut self, frame: &Frame<'_>, snaplen: usize) -> Result<()> {
        let data: &[u8] = match frame.vlan.as_ref().and_then(|tag| Retagged::new(frame.data, tag)) {
            Some(tagged) => {
                self.scratch.resize(tagged.len(), 0);
                let n = tagged.encode(&mut self.scratch).map_err(|e| Error::Io {
                    what: "put the VLAN tag back".into(),
                    source: io::Error::other(e),
                })?;
                &self.scratch[..n]
            }
            None => frame.data,
        };
        let tag_len = if frame.vlan.is_some() { 4 } else { 0 };
        let data = &data[..data.len().min(snaplen)];
        self.writer
            .packet(0, frame.timestamp.as_nanos() as u64, frame.wire_len + tag_len, data)
            .map_err(io_error("write a packet to --write"))?;
        self.dirty = true;
        Ok(())
    }

    /// Writes an Interface Statistics Block stamped `now` (since the epoch).
    pub fn statistics(&mut self, now: Duration, c: Counters) -> Result<()> {
        let statistics = Statistics {
            received: c.received,
            interface_drops: Some(c.interface_drops),
            os_drops: c.os_drops,
            delivered: c.delivered,
        };
        self.writer
            .statistics(0, now.as_nanos() as u64, &statistics)
            .map_err(io_error("write statistics to --write"))?;
        self.dirty = true;
        Ok(())
    }

    /// Pushes what is buffered to the file or pipe.
    pub fn flush(&mut self) -> Result<()> {
        if std::mem::take(&mut self.dirty) {
            self.writer
                .get_mut()
                .flush()
                .map_err(|source| Error::Io { what: "write to --write".into(), source })?;
        }
        Ok(())
    }
}

/// Whether `e` says the reader of the stream went away (EPIPE): a clean end
/// of the capture (`wireshark` closed, `head -c` satisfied), not a failure.
pub fn reader_gone(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP frame from 198.18.1.2 to 198.18.1.1 carrying `payload`.
    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 1, 2], [198, 18, 1, 1], 64)
            .udp(40000, 7788)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// `frame.time_epoch` of every packet in `file`, as tshark prints it.
    fn tshark_epochs(file: &std::path::Path) -> Vec<String> {
        bpc_netns::tshark(file, &["-T", "fields", "-e", "frame.time_epoch"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_stream_matches_its_golden_and_tshark_reads_the_nanosecond_times_written() {
        // `BPC_REGEN=1 cargo test -p bpc-agent --lib pcapng` rewrites the golden.
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pcapng/agent.pcapng");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pcapng");
        let mut out = PcapngOut::open(&WriteTarget::File(path.clone()), "eth0", 262_144).unwrap();
        let times = [Duration::new(1_764_000_000, 123_456_789), Duration::new(1_764_000_000, 125_000_001)];
        let plain = udp_frame(b"plain");
        out.packet(
            &Frame { data: &plain, wire_len: plain.len() as u32, vlan: None, timestamp: times[0] },
            262_144,
        )
        .unwrap();
        // Tag put back (VLAN 100), and cut to a 40-byte snap length.
        let tagged = udp_frame(&[0x5a; 64]);
        let frame = Frame {
            data: &tagged,
            wire_len: tagged.len() as u32,
            vlan: Some([0x81, 0, 0, 100]),
            timestamp: times[1],
        };
        out.packet(&frame, 40).unwrap();
        let counters = Counters { received: 3, interface_drops: 0, os_drops: 1, delivered: 2 };
        out.statistics(Duration::new(1_764_000_001, 0), counters).unwrap();
        out.flush().unwrap();
        drop(out);
        bpc_netns::golden(golden, &std::fs::read(&path).unwrap(), "--write");
        let want: Vec<String> =
            times.iter().map(|t| format!("{}.{:09}", t.as_secs(), t.subsec_nanos())).collect();
        assert_eq!(tshark_epochs(&path), want);
    }
}
