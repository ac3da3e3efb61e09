//! The send floor: the cheapest way to put GRE packets of a given size on
//! the wire from user space (pre-built packets, `sendmmsg` on a raw socket,
//! no capture). Whatever forwarder we build cannot beat this.
//!
//! `send-floor --to IP --size FRAME_BYTES --seconds S [--pps N] [--batch 64]`
//! prints one JSON line: sent, seconds, pps, cpu_seconds, cpu_us_per_packet.

use std::net::{Ipv4Addr, SocketAddrV4};

use bpc_bench_tools::{Args, Batch, cpu_seconds, paced_in_batches, socket, udp_frame};
use bpc_wire::{Direction, GreProfile};

/// Any key: the send floor's packets are counted, not attributed.
const KEY: u32 = 0x0be7_c400;

fn main() {
    let args = Args::from_env();
    let to: Ipv4Addr = args.get("to", Ipv4Addr::new(198, 18, 0, 2));
    let size: usize = args.get("size", 512usize).max(60);
    let seconds: f64 = args.get("seconds", 3.0);
    let pps: u64 = args.get("pps", 0);
    let batch_len: usize = args.get("batch", 64);
    let fd = socket(libc::AF_INET, libc::SOCK_RAW, i32::from(bpc_wire::IPPROTO_GRE));
    let header_len = GreProfile::Standard.header_len();
    let mut batch = Batch::new(fd, batch_len, header_len + size, SocketAddrV4::new(to, 0));
    for buf in batch.bufs() {
        GreProfile::Standard.write_header(buf, KEY, 0, Direction::Unknown).unwrap();
        udp_frame(&mut buf[header_len..], Ipv4Addr::new(198, 18, 9, 1), Ipv4Addr::new(198, 18, 9, 2));
    }
    let cpu0 = cpu_seconds();
    let mut sequence = 0u32;
    let (sent, secs) = paced_in_batches(pps, seconds, batch_len, batch_len, |n| {
        for buf in &mut batch.bufs()[..n] {
            buf[8..12].copy_from_slice(&sequence.to_be_bytes());
            sequence = sequence.wrapping_add(1);
        }
        batch.send(n).unwrap_or(0)
    });
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"sent\":{sent},\"seconds\":{secs:.3},\"pps\":{:.0},\"cpu_seconds\":{cpu:.3},\"cpu_us_per_packet\":{:.3}}}",
        sent as f64 / secs,
        cpu * 1e6 / sent.max(1) as f64
    );
}
