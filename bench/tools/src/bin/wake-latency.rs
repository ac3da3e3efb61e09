//! How long this machine takes to wake a sleeping thread: the floor under
//! the prompt path's forwarding delay (issue 26). A thread writes its clock
//! into a pipe every 5 ms; another, blocked in `read`, takes the difference
//! when it runs. Printed for the reader on the writer's CPU and on the
//! other one (an idle CPU, which on a VM is a halted vCPU the host has to
//! schedule again), as p50/p90/p99/max in microseconds, one JSON line each.
//!
//! Usage: wake-latency [ROUNDS]   (default 1000; needs two CPUs)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set), 0, "pin to CPU {cpu}");
    }
}

fn run(writer_cpu: usize, reader_cpu: usize, rounds: usize) -> Vec<u64> {
    let (mut tx, mut rx) = UnixStream::pair().expect("socket pair");
    let epoch = Instant::now();
    let reader = std::thread::spawn(move || {
        pin(reader_cpu);
        let mut delays = Vec::with_capacity(rounds);
        let mut buf = [0u8; 8];
        for _ in 0..rounds {
            rx.read_exact(&mut buf).expect("read");
            let sent = Duration::from_nanos(u64::from_ne_bytes(buf));
            delays.push((epoch.elapsed() - sent).as_nanos() as u64);
        }
        delays
    });
    pin(writer_cpu);
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(5));
        let now = epoch.elapsed().as_nanos() as u64;
        tx.write_all(&now.to_ne_bytes()).expect("write");
    }
    let mut delays = reader.join().expect("reader");
    delays.sort_unstable();
    delays
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(1000, |s| s.parse().expect("ROUNDS is a number"));
    for (writer, reader, name) in [(0, 0, "same CPU"), (0, 1, "other CPU")] {
        let d = run(writer, reader, rounds);
        let q = |p: f64| d[((d.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
        println!(
            "{{\"wake\":\"{name}\",\"rounds\":{rounds},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
    }
}
