//! The send floor through an AF_PACKET TX ring (TPACKET_V2,
//! PACKET_QDISC_BYPASS) instead of a raw IPPROTO_GRE socket: complete
//! Ethernet + IPv4 + GRE packets are pre-built in the ring's frames, only
//! the GRE sequence, IPv4 identification and header checksum change per
//! packet, and one `send()` hands the kernel a whole batch. No routing, no
//! checksum-while-copying, no qdisc. The question it answers: is this
//! measurably cheaper per packet than `sendmmsg` on a raw socket?
//!
//! `send-floor-txring --ifname IF --dst-mac aa:bb:.. --src IP --to IP --size FRAME_BYTES
//!  --seconds S [--pps N] [--batch 64]` prints the same JSON line as send-floor.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;

use bpc_bench_tools::{Args, cpu_seconds, paced_in_batches, socket, udp_frame};
use bpc_wire::ethernet::ETHERTYPE_IPV4;
use bpc_wire::{Direction, EthernetHeader, GreProfile, Ipv4Header, parse_mac};

const KEY: u32 = 0x0be7_c400;
const PACKET_VERSION: i32 = 10;
const PACKET_TX_RING: i32 = 13;
const PACKET_QDISC_BYPASS: i32 = 20;
const TPACKET_V2: i32 = 1;
const FRAME_SIZE: usize = 4096;
const FRAME_COUNT: usize = 512;
/// Where a TPACKET_V2 TX frame's data starts: TPACKET2_HDRLEN - sizeof(sockaddr_ll).
const DATA_AT: usize = 32;
const ETH_LEN: usize = bpc_wire::ethernet::HEADER_LEN;
const IP_LEN: usize = bpc_wire::ipv4::HEADER_LEN;

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) {
    // SAFETY: value points to a live T of the given size.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if r < 0 {
        eprintln!("setsockopt {name}: {}", io::Error::last_os_error());
        std::process::exit(1);
    }
}

fn main() {
    let args = Args::from_env();
    let ifname: String = args.get("ifname", String::from("eth0"));
    let dst_mac = parse_mac(&args.get("dst-mac", String::from("ff:ff:ff:ff:ff:ff"))).unwrap_or_default();
    let src: Ipv4Addr = args.get("src", Ipv4Addr::new(198, 18, 0, 1));
    let to: Ipv4Addr = args.get("to", Ipv4Addr::new(198, 18, 0, 2));
    let size: usize = args.get("size", 512usize).max(60);
    let seconds: f64 = args.get("seconds", 3.0);
    let pps: u64 = args.get("pps", 0);
    let batch_len: usize = args.get("batch", 64);
    let src_mac = parse_mac(
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap_or_default().trim(),
    )
    .unwrap_or_default();
    let gre_len = GreProfile::Standard.header_len();
    let packet_len = ETH_LEN + IP_LEN + gre_len + size;
    assert!(DATA_AT + packet_len <= FRAME_SIZE, "frame too large for the ring's frames");

    // Protocol 0: this socket never receives.
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
    setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2);
    setsockopt(fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32);
    let req = libc::tpacket_req {
        tp_block_size: FRAME_SIZE as u32,
        tp_block_nr: FRAME_COUNT as u32,
        tp_frame_size: FRAME_SIZE as u32,
        tp_frame_nr: FRAME_COUNT as u32,
    };
    setsockopt(fd, libc::SOL_PACKET, PACKET_TX_RING, &req);
    let ring_len = FRAME_SIZE * FRAME_COUNT;
    // SAFETY: maps the ring the kernel just allocated for fd.
    let ring = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ring_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if ring == libc::MAP_FAILED {
        eprintln!("mmap: {}", io::Error::last_os_error());
        std::process::exit(1);
    }
    // SAFETY: the mapping is ring_len bytes and lives until exit.
    let ring = unsafe { std::slice::from_raw_parts_mut(ring.cast::<u8>(), ring_len) };
    let name = CString::new(ifname.clone()).unwrap_or_default();
    // SAFETY: plain libc call on a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        eprintln!("unknown interface {ifname}");
        std::process::exit(1);
    }
    // SAFETY: zeroed sockaddr_ll is valid; bind to the interface.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll.
    let r = unsafe {
        libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), size_of::<libc::sockaddr_ll>() as u32)
    };
    if r < 0 {
        eprintln!("bind: {}", io::Error::last_os_error());
        std::process::exit(1);
    }

    // Pre-build the whole packet in every frame of the ring.
    for slot in ring.chunks_exact_mut(FRAME_SIZE) {
        let p = &mut slot[DATA_AT..DATA_AT + packet_len];
        let eth = EthernetHeader { destination: dst_mac, source: src_mac, ethertype: ETHERTYPE_IPV4 };
        let ip = Ipv4Header {
            source: src,
            destination: to,
            protocol: bpc_wire::IPPROTO_GRE,
            ttl: 64,
            identification: 0,
            dont_fragment: false,
            payload_len: gre_len + size,
        };
        eth.encode(p).expect("frame holds Ethernet");
        ip.encode(&mut p[ETH_LEN..]).expect("frame holds IPv4");
        let gre = &mut p[ETH_LEN + IP_LEN..];
        GreProfile::Standard.write_header(gre, KEY, 0, Direction::Unknown).unwrap();
        udp_frame(
            &mut gre[gre_len..gre_len + size],
            Ipv4Addr::new(198, 18, 9, 1),
            Ipv4Addr::new(198, 18, 9, 2),
        );
    }

    let cpu0 = cpu_seconds();
    let (mut next, mut sequence, mut id) = (0usize, 0u32, 0u16);
    let (sent, secs) = paced_in_batches(pps, seconds, batch_len, batch_len, |n| {
        let mut queued = 0;
        for _ in 0..n {
            let slot = &mut ring[next * FRAME_SIZE..(next + 1) * FRAME_SIZE];
            // SAFETY: every slot starts with a tpacket2_hdr shared with the kernel.
            let hdr = unsafe { &mut *slot.as_mut_ptr().cast::<libc::tpacket2_hdr>() };
            // SAFETY: volatile read of a field the kernel writes.
            if unsafe { std::ptr::read_volatile(&hdr.tp_status) } != libc::TP_STATUS_AVAILABLE {
                break; // still in flight: send what is queued, retry later
            }
            let p = &mut slot[DATA_AT..DATA_AT + packet_len];
            let ip = &mut p[ETH_LEN..ETH_LEN + IP_LEN];
            ip[4..6].copy_from_slice(&id.to_be_bytes());
            ip[10..12].fill(0);
            let sum = bpc_wire::internet_checksum(&[ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            p[ETH_LEN + IP_LEN + 8..ETH_LEN + IP_LEN + 12].copy_from_slice(&sequence.to_be_bytes());
            hdr.tp_len = packet_len as u32;
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            // SAFETY: volatile write hands the frame to the kernel.
            unsafe { std::ptr::write_volatile(&mut hdr.tp_status, libc::TP_STATUS_SEND_REQUEST) };
            (sequence, id) = (sequence.wrapping_add(1), id.wrapping_add(1));
            next = (next + 1) % FRAME_COUNT;
            queued += 1;
        }
        // SAFETY: a NULL send flushes the TX ring.
        let r = unsafe { libc::send(fd, std::ptr::null(), 0, 0) };
        if r < 0 { 0 } else { queued }
    });
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"sent\":{sent},\"seconds\":{secs:.3},\"pps\":{:.0},\"cpu_seconds\":{cpu:.3},\"cpu_us_per_packet\":{:.3}}}",
        sent as f64 / secs,
        cpu * 1e6 / sent.max(1) as f64
    );
}
