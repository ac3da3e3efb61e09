//! The prompt floor: the cheapest forwarder that sends every frame as soon
//! as it is captured (issue 26's timeline), to weigh the agent's prompt path
//! against. One thread, blocked in `recv` on an AF_PACKET socket of the
//! interface; for every frame one `send` of [GRE header, frame] on a raw GRE
//! socket. No ring, no filter, no counters, no steering: what is left is the
//! wake-up and the send, which any design that forwards an isolated frame
//! within microseconds has to pay once per frame.
//!
//! `prompt-floor --interface IF --to IP --seconds S`
//! prints one JSON line: frames, seconds, cpu_seconds, cpu_us_per_frame.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::time::Instant;

use bpc_bench_tools::{Args, cpu_seconds, socket};
use bpc_wire::{Direction, GreProfile};

const KEY: u32 = 0x0be7_c400;

fn main() {
    let args = Args::from_env();
    let interface: String = args.get("interface", String::from("eth0"));
    let to: Ipv4Addr = args.get("to", Ipv4Addr::new(198, 18, 0, 2));
    let seconds: f64 = args.get("seconds", 3.0);
    let name = CString::new(interface.clone()).expect("interface name");
    // SAFETY: name is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex != 0, "no interface {interface}");
    let capture = socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ALL as u16).to_be()));
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are the ones bind reads.
    unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        let rc = libc::bind(capture, (&raw const sll).cast(), size_of::<libc::sockaddr_ll>() as u32);
        assert_eq!(rc, 0, "bind to {interface}");
        // Wake at least every 100 ms to notice the end of the run.
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        libc::setsockopt(capture, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const tv).cast(), size_of::<libc::timeval>() as u32);
    }
    let gre = socket(libc::AF_INET, libc::SOCK_RAW, i32::from(bpc_wire::IPPROTO_GRE));
    // SAFETY: a zeroed sockaddr_in is valid; family and address are set.
    let dest = unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as u16;
        sin.sin_addr.s_addr = u32::from(to).to_be();
        sin
    };
    let header_len = GreProfile::Standard.header_len();
    let mut buf = vec![0u8; header_len + 65_536];
    let (mut frames, mut sequence) = (0u64, 0u32);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        // SAFETY: buf outlives the call and the length is its own.
        let n = unsafe { libc::recv(capture, buf[header_len..].as_mut_ptr().cast(), buf.len() - header_len, 0) };
        if n <= 0 {
            continue;
        }
        GreProfile::Standard.write_header(&mut buf, KEY, sequence, Direction::Unknown).unwrap();
        sequence = sequence.wrapping_add(1);
        // SAFETY: buf and dest outlive the call.
        unsafe {
            libc::sendto(gre, buf.as_ptr().cast(), header_len + n as usize, 0, (&raw const dest).cast(), size_of::<libc::sockaddr_in>() as u32);
        }
        frames += 1;
    }
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"frames\":{frames},\"seconds\":{:.3},\"cpu_seconds\":{cpu:.4},\"cpu_us_per_frame\":{:.2}}}",
        start.elapsed().as_secs_f64(),
        cpu * 1e6 / frames.max(1) as f64
    );
}
