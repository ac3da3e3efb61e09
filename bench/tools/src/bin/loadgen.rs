//! The benchmark's traffic: Ethernet/IPv4/UDP datagrams of a given frame
//! size sent to a pod at a paced rate, each payload stamped with
//! [`MARKER`] (bpc-sim's latency marker), the send time and a counter, so the
//! receiver can measure capture-to-receive latency.
//!
//! `loadgen --to IP --size FRAME_BYTES --pps N --seconds S [--batch 32] [--match-every 10]`
//! prints one JSON line: sent, matched, seconds, pps, cpu_seconds.
//! Every `match-every`-th datagram goes to UDP port [`MATCH_PORT`], the others
//! to [`OTHER_PORT`], so the filter `udp dst port 10` selects exactly that
//! share (`matched` says how many were sent).
//! Send to an address the pod's MAC answers for but the pod does not own
//! (a static neighbour entry): the pod's eth0 sees every frame, its IP layer
//! drops them silently, and the pod spends nothing on the traffic.

use std::net::{Ipv4Addr, SocketAddrV4};

use bpc_bench_tools::{
    Args, Batch, COUNTER_AT, MARKER, STAMP_AT, STAMP_LEN, cpu_seconds, now_ns, paced, socket,
};

/// Destination port of the datagrams a filter should select.
const MATCH_PORT: u16 = 10;
/// Destination port of the rest.
const OTHER_PORT: u16 = 9;

fn main() {
    let args = Args::from_env();
    let to: Ipv4Addr = args.get("to", Ipv4Addr::new(198, 18, 0, 250));
    let size: usize = args.get("size", 512usize);
    let pps: u64 = args.get("pps", 10_000);
    let seconds: f64 = args.get("seconds", 3.0);
    let batch_len: usize = args.get("batch", 32);
    let match_every: u64 = args.get("match-every", 10u64).max(1);
    // Ethernet 14 + IPv4 20 + UDP 8 around the payload.
    let payload = size.saturating_sub(42).max(STAMP_LEN);
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    let mut batch = Batch::new(fd, batch_len, payload, SocketAddrV4::new(to, OTHER_PORT));
    for buf in batch.bufs() {
        buf[..MARKER.len()].copy_from_slice(MARKER);
    }
    let mut matching = vec![false; batch_len];
    let cpu0 = cpu_seconds();
    let (mut counter, mut matched) = (0u64, 0u64);
    let (sent, secs) = paced(pps, seconds, batch_len, |n| {
        let now = now_ns().to_be_bytes();
        for (i, matches) in matching[..n].iter_mut().enumerate() {
            let c = counter + i as u64;
            let buf = &mut batch.bufs()[i];
            buf[STAMP_AT..STAMP_AT + 8].copy_from_slice(&now);
            buf[COUNTER_AT..COUNTER_AT + 8].copy_from_slice(&c.to_be_bytes());
            *matches = c.is_multiple_of(match_every);
            batch.set_port(i, if *matches { MATCH_PORT } else { OTHER_PORT });
        }
        let sent = batch.send(n).unwrap_or(0);
        // Unsent datagrams are stamped again next time, with the same counters.
        counter += sent as u64;
        matched += matching[..sent].iter().filter(|&&m| m).count() as u64;
        sent
    });
    println!(
        "{{\"sent\":{sent},\"matched\":{matched},\"seconds\":{secs:.3},\"pps\":{:.0},\"cpu_seconds\":{:.3}}}",
        sent as f64 / secs,
        cpu_seconds() - cpu0
    );
}
