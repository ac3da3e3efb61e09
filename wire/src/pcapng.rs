//! The pcapng blocks this product writes (the agent's `--write`, the
//! `kubectl bpc capture -w` merge): one section header, Ethernet interfaces
//! with nanosecond timestamps, Enhanced Packet Blocks, Interface Statistics
//! Blocks and Name Resolution Blocks, little-endian.
//!
//! ```text
//! | block type (4) | total length (4) | body, padded to 4 | options, opt_endofopt | total length (4) |
//! ```
//!
//! [`PcapngWriter`] writes each block straight into the caller's
//! [`io::Write`] (a `BufWriter`, a `Vec`), header, data and padding in a few
//! `write_all`s: nothing is allocated per packet. The bytes are the ones
//! pcap-file 2 wrote before this writer replaced it (the goldens in
//! `testdata/pcapng` prove it), quirk included: see [`PcapngWriter::statistics`].

use std::io::{self, Write};
use std::net::IpAddr;

const BLOCK_SECTION_HEADER: u32 = 0x0a0d_0d0a;
const BLOCK_INTERFACE_DESCRIPTION: u32 = 1;
const BLOCK_NAME_RESOLUTION: u32 = 4;
const BLOCK_INTERFACE_STATISTICS: u32 = 5;
const BLOCK_ENHANCED_PACKET: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_END: u16 = 0;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_DESCRIPTION: u16 = 3;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_ISB_IFRECV: u16 = 4;
const OPT_ISB_IFDROP: u16 = 5;
const OPT_ISB_OSDROP: u16 = 7;
const OPT_ISB_USRDELIV: u16 = 8;
/// if_tsresol 9: timestamps count nanoseconds.
const TSRESOL_NANOSECONDS: u8 = 9;

const NRB_END: u16 = 0;
const NRB_IPV4: u16 = 1;
const NRB_IPV6: u16 = 2;

/// Block type, total length, and the trailing total length.
const BLOCK_FRAME_LEN: usize = 12;
const OPTION_HEADER_LEN: usize = 4;

/// Bytes of zero padding after `len` bytes, to the next multiple of 4.
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Length of one option with a value of `len` bytes, padding included.
fn option_len(len: usize) -> usize {
    OPTION_HEADER_LEN + len + pad(len)
}

/// One interface of a section: an Ethernet link with nanosecond timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface<'a> {
    /// if_name: the capture interface (`eth0`) or the pod (`shop/web-1`).
    pub name: &'a str,
    /// if_description, when there is one.
    pub description: Option<&'a str>,
    /// The snap length frames were cut to.
    pub snaplen: u32,
}

/// The counters of an Interface Statistics Block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    /// isb_ifrecv: frames the interface received (the filter accepted).
    pub received: u64,
    /// isb_ifdrop, when the writer tells the interface's drops apart.
    pub interface_drops: Option<u64>,
    /// isb_osdrop: dropped by the operating system (the kernel ring, caps).
    pub os_drops: u64,
    /// isb_usrdeliv: delivered to this file.
    pub delivered: u64,
}

/// Writes pcapng blocks to `W`.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block (version 1.0, section length
    /// unknown, no options) and returns the writer.
    pub fn new(out: W) -> io::Result<Self> {
        let mut w = PcapngWriter { out };
        let mut body = [0u8; 16];
        body[..4].copy_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body[4..6].copy_from_slice(&1u16.to_le_bytes());
        body[6..8].copy_from_slice(&0u16.to_le_bytes());
        body[8..].copy_from_slice(&(-1i64).to_le_bytes());
        w.block(BLOCK_SECTION_HEADER, &body, &[], 0, |_| Ok(()))?;
        Ok(w)
    }

    /// Writes an Interface Description Block; interfaces are numbered from 0
    /// in the order they are written.
    pub fn interface(&mut self, i: &Interface<'_>) -> io::Result<()> {
        let mut body = [0u8; 8];
        body[..2].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body[4..].copy_from_slice(&i.snaplen.to_le_bytes());
        let options = option_len(i.name.len())
            + option_len(1)
            + i.description.map_or(0, |d| option_len(d.len()))
            + OPTION_HEADER_LEN;
        self.block(BLOCK_INTERFACE_DESCRIPTION, &body, &[], options, |out| {
            write_option(out, OPT_IF_NAME, i.name.as_bytes())?;
            write_option(out, OPT_IF_TSRESOL, &[TSRESOL_NANOSECONDS])?;
            if let Some(d) = i.description {
                write_option(out, OPT_IF_DESCRIPTION, d.as_bytes())?;
            }
            write_option_end(out)
        })
    }

    /// Writes an Enhanced Packet Block: `data` captured at `timestamp_ns`
    /// (nanoseconds since the epoch) on `interface_id`, `original_len` bytes
    /// on the wire.
    pub fn packet(
        &mut self,
        interface_id: u32,
        timestamp_ns: u64,
        original_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let mut body = [0u8; 20];
        body[..4].copy_from_slice(&interface_id.to_le_bytes());
        body[4..8].copy_from_slice(&((timestamp_ns >> 32) as u32).to_le_bytes());
        body[8..12].copy_from_slice(&(timestamp_ns as u32).to_le_bytes());
        body[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        body[16..].copy_from_slice(&original_len.to_le_bytes());
        self.block(BLOCK_ENHANCED_PACKET, &body, data, 0, |_| Ok(()))
    }

    /// Writes an Interface Statistics Block stamped `timestamp_ns`.
    ///
    /// The timestamp is written as one little-endian 64-bit number (low word
    /// first), where the pcapng specification has the high word first: what
    /// pcap-file 2 wrote and its parser reads back, and `kubectl bpc capture
    /// -w` reads the agent's blocks with that parser. Kept so the streams of
    /// agents already deployed and of this one read the same.
    pub fn statistics(&mut self, interface_id: u32, timestamp_ns: u64, s: &Statistics) -> io::Result<()> {
        let mut body = [0u8; 12];
        body[..4].copy_from_slice(&interface_id.to_le_bytes());
        body[4..].copy_from_slice(&timestamp_ns.to_le_bytes());
        let counters = 3 + usize::from(s.interface_drops.is_some());
        let options = counters * option_len(8) + OPTION_HEADER_LEN;
        self.block(BLOCK_INTERFACE_STATISTICS, &body, &[], options, |out| {
            write_option(out, OPT_ISB_IFRECV, &s.received.to_le_bytes())?;
            if let Some(drops) = s.interface_drops {
                write_option(out, OPT_ISB_IFDROP, &drops.to_le_bytes())?;
            }
            write_option(out, OPT_ISB_OSDROP, &s.os_drops.to_le_bytes())?;
            write_option(out, OPT_ISB_USRDELIV, &s.delivered.to_le_bytes())?;
            write_option_end(out)
        })
    }

    /// Writes a Name Resolution Block: one record per host with a name
    /// (empty names are left out), then the end of records; no options.
    pub fn names(&mut self, hosts: &[(IpAddr, String)]) -> io::Result<()> {
        let named = || hosts.iter().filter(|(_, name)| !name.is_empty());
        let records: usize = named().map(|(ip, name)| option_len(address_len(ip) + name.len() + 1)).sum();
        self.block(BLOCK_NAME_RESOLUTION, &[], &[], records + OPTION_HEADER_LEN, |out| {
            for (ip, name) in named() {
                let (kind, octets) = match ip {
                    IpAddr::V4(a) => (NRB_IPV4, &a.octets()[..]),
                    IpAddr::V6(a) => (NRB_IPV6, &a.octets()[..]),
                };
                let len = octets.len() + name.len() + 1;
                out.write_all(&kind.to_le_bytes())?;
                out.write_all(&(len as u16).to_le_bytes())?;
                out.write_all(octets)?;
                out.write_all(name.as_bytes())?;
                out.write_all(&[0])?;
                out.write_all(&[0; 3][..pad(len)])?;
            }
            out.write_all(&NRB_END.to_le_bytes())?;
            out.write_all(&0u16.to_le_bytes())
        })
    }

    /// The output, to flush or inspect.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The output, once everything is written.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes one block: `fixed` (the block's fixed fields), `data` padded to
    /// 4, then `options_len` bytes from `options`.
    fn block(
        &mut self,
        kind: u32,
        fixed: &[u8],
        data: &[u8],
        options_len: usize,
        options: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        let total = BLOCK_FRAME_LEN + fixed.len() + data.len() + pad(data.len()) + options_len;
        let total = u32::try_from(total).map_err(|_| io::Error::other("pcapng block over 4 GiB"))?;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(fixed)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0; 3][..pad(data.len())])?;
        options(&mut self.out)?;
        self.out.write_all(&total.to_le_bytes())
    }
}

fn address_len(ip: &IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

fn write_option(out: &mut impl Write, code: u16, value: &[u8]) -> io::Result<()> {
    out.write_all(&code.to_le_bytes())?;
    out.write_all(&(value.len() as u16).to_le_bytes())?;
    out.write_all(value)?;
    out.write_all(&[0; 3][..pad(value.len())])
}

fn write_option_end(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&OPT_END.to_le_bytes())?;
    out.write_all(&0u16.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use pcap_file::DataLink;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::blocks::interface_statistics::{
        InterfaceStatisticsBlock, InterfaceStatisticsOption,
    };
    use pcap_file::pcapng::blocks::name_resolution::{Ipv4Record, Ipv6Record, NameResolutionBlock, Record};

    use super::*;

    /// pcap-file's writer is the oracle: every block, byte for byte.
    #[test]
    fn every_block_is_byte_identical_to_pcap_files() {
        let hosts = vec![
            (IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)), "web-1".to_owned()),
            (IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)), "db-0.shop.svc".to_owned()),
            (IpAddr::V4(Ipv4Addr::new(198, 18, 1, 3)), String::new()),
        ];
        let mut ours = PcapngWriter::new(Vec::new()).unwrap();
        let mut theirs = pcap_file::pcapng::PcapNgWriter::new(Vec::new()).unwrap();
        for (name, description) in [("eth0", None), ("shop/web-1", Some("pod of deployment/web"))] {
            ours.interface(&Interface { name, description, snaplen: 262_144 }).unwrap();
            let mut options = vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                InterfaceDescriptionOption::IfTsResol(9),
            ];
            if let Some(d) = description {
                options.push(InterfaceDescriptionOption::IfDescription(Cow::Borrowed(d)));
            }
            theirs
                .write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 262_144,
                    options,
                })
                .unwrap();
        }
        for len in 0..6 {
            let data: Vec<u8> = (0..len as u8).collect();
            let ts = 1_764_000_000_123_456_789 + u64::from(len as u8);
            ours.packet(1, ts, 1500, &data).unwrap();
            theirs
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 1,
                    timestamp: Duration::from_nanos(ts),
                    original_len: 1500,
                    data: Cow::Borrowed(&data),
                    options: vec![],
                })
                .unwrap();
        }
        for interface_drops in [Some(4), None] {
            let s = Statistics { received: 3, interface_drops, os_drops: 1, delivered: 2 };
            ours.statistics(0, 1_764_000_001_000_000_000, &s).unwrap();
            let mut options = vec![InterfaceStatisticsOption::IsbIfRecv(3)];
            options.extend(interface_drops.map(InterfaceStatisticsOption::IsbIfDrop));
            options.push(InterfaceStatisticsOption::IsbOsDrop(1));
            options.push(InterfaceStatisticsOption::IsbUsrDeliv(2));
            theirs
                .write_pcapng_block(InterfaceStatisticsBlock {
                    interface_id: 0,
                    timestamp: 1_764_000_001_000_000_000,
                    options,
                })
                .unwrap();
        }
        ours.names(&hosts).unwrap();
        // The unnamed host has no record.
        let v4 = Ipv4Record { ip_addr: Cow::Borrowed(&[198, 18, 1, 2]), names: vec![Cow::Borrowed("web-1")] };
        let v6 = Ipv6Record {
            ip_addr: Cow::Owned(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1).octets().to_vec()),
            names: vec![Cow::Borrowed("db-0.shop.svc")],
        };
        let records = vec![Record::Ipv4(v4), Record::Ipv6(v6)];
        theirs.write_pcapng_block(NameResolutionBlock { records, options: vec![] }).unwrap();
        assert_eq!(ours.into_inner(), theirs.into_inner());
    }

    #[test]
    fn a_failing_output_is_an_error_not_a_panic() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = PcapngWriter::new(Full).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
