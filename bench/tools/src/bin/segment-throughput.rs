//! The cost of `--oversize segment`: cuts one IPv4 TCP super-frame of 65,000
//! payload bytes (timestamps option, as Linux sends bulk data) into frames of
//! at most 1,468 bytes (a 1500-byte path under the standard GRE header) with
//! the agent's own segmenter, again and again on one core.
//!
//! `segment-throughput [--rounds 20000] [--max-frame 1468]` prints one line:
//! microseconds per super-frame and output GB/s (docs/agent.md, "Oversize frames").

use std::net::Ipv4Addr;
use std::time::Instant;

use bpc_agent::segment::Segmenter;
use bpc_bench_tools::{Args, ipv4_frame};
use bpc_wire::tcp::{FLAG_ACK, FLAG_PSH, IPPROTO_TCP};

const PAYLOAD: usize = 65_000;
/// NOP, NOP, timestamps: what Linux puts on every bulk segment.
const TCP_TIMESTAMPS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78];

/// An Ethernet/IPv4/TCP super-frame as a pod's veth hands it to libpcap
/// (the TCP checksum is left as the kernel leaves it for offload: unset).
fn super_frame() -> Vec<u8> {
    let tcp_len = 20 + TCP_TIMESTAMPS.len();
    let mut frame = vec![0u8; 14 + 20 + tcp_len + PAYLOAD];
    let l4 = ipv4_frame(&mut frame, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2), IPPROTO_TCP);
    let tcp = &mut frame[l4..l4 + tcp_len];
    tcp[..4].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]); // ports 40000 -> 5201
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = FLAG_ACK | FLAG_PSH;
    tcp[14..16].copy_from_slice(&502u16.to_be_bytes());
    tcp[20..].copy_from_slice(&TCP_TIMESTAMPS);
    for (i, b) in frame[l4 + tcp_len..].iter_mut().enumerate() {
        *b = (i * 7 + i / 251) as u8;
    }
    frame
}

fn main() {
    let args = Args::from_env();
    let rounds: usize = args.get("rounds", 20_000);
    let max_frame: usize = args.get("max-frame", 1468);
    let frame = super_frame();
    let mut seg = Segmenter::new(max_frame);
    let (mut bytes, mut frames) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..rounds {
        seg.segment(std::hint::black_box(&frame), |f| {
            bytes += f.len();
            frames += 1;
        });
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{rounds} super-frames of {} bytes into {} frames of <= {max_frame} bytes: {:.1} us each, {:.2} GB/s out",
        frame.len(),
        frames / rounds,
        elapsed * 1e6 / rounds as f64,
        bytes as f64 / elapsed / 1e9
    );
}
