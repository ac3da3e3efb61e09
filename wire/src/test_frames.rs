//! Frames for tests, built by etherparse (an encoder independent of this
//! crate): for wire's own tests and, behind the `test-frames` feature, the
//! tests of crates that read frames (the agent's capture filter).

/// The IPv6 source of [`udp_over_ipv6`]: 2001:2::1.
pub const IPV6_SOURCE: [u8; 16] = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The IPv6 destination of [`udp_over_ipv6`]: 2001:2::2.
pub const IPV6_DESTINATION: [u8; 16] = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An Ethernet/IPv6/UDP frame from [`IPV6_SOURCE`] to [`IPV6_DESTINATION`]
/// (hop limit 64, UDP checksum computed) carrying `payload`.
pub fn udp_over_ipv6(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(IPV6_SOURCE, IPV6_DESTINATION, 64)
        .udp(source_port, destination_port)
        .write(&mut out, payload)
        .expect("a frame of this size is built");
    out
}
