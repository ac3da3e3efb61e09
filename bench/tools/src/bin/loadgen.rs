//! The benchmark's traffic: Ethernet/IPv4/UDP datagrams of a given frame
//! size sent to a pod at a paced rate, each payload stamped with
//! [`MARKER`], the send time and a counter, so the receiver can measure
//! capture-to-receive latency.
//!
//! `loadgen --to IP --size FRAME_BYTES --pps N --seconds S [--batch 32]`
//! prints one JSON line: sent, seconds, pps, cpu_seconds.
//! Send to an address the pod's MAC answers for but the pod does not own
//! (a static neighbour entry): the pod's eth0 sees every frame, its IP layer
//! drops them silently, and the pod spends nothing on the traffic.

use std::net::{Ipv4Addr, SocketAddrV4};

use bpc_bench_tools::{Args, Batch, MARKER, cpu_seconds, now_ns, paced, socket};

fn main() {
    let args = Args::from_env();
    let to: Ipv4Addr = args.get("to", Ipv4Addr::new(198, 18, 0, 250));
    let size: usize = args.get("size", 512usize);
    let pps: u64 = args.get("pps", 10_000);
    let seconds: f64 = args.get("seconds", 3.0);
    let batch_len: usize = args.get("batch", 32);
    // Ethernet 14 + IPv4 20 + UDP 8 around the payload.
    let payload = size.saturating_sub(42).max(MARKER.len() + 16);
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    let mut batch = Batch::new(fd, batch_len, payload, SocketAddrV4::new(to, 9));
    for buf in batch.bufs() {
        buf[..8].copy_from_slice(MARKER);
    }
    let cpu0 = cpu_seconds();
    let mut counter = 0u64;
    let (sent, secs) = paced(pps, seconds, batch_len, |n| {
        let now = now_ns();
        for buf in &mut batch.bufs()[..n] {
            buf[8..16].copy_from_slice(&now.to_be_bytes());
            buf[16..24].copy_from_slice(&counter.to_be_bytes());
            counter += 1;
        }
        batch.send(n).unwrap_or(0)
    });
    println!(
        "{{\"sent\":{sent},\"seconds\":{secs:.3},\"pps\":{:.0},\"cpu_seconds\":{:.3}}}",
        sent as f64 / secs,
        cpu_seconds() - cpu0
    );
}
