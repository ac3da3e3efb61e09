//! The two ports a TCP and a UDP header both start with.

/// Source and destination port: the first 4 bytes of a TCP or UDP header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Source port.
    pub source: u16,
    /// Destination port.
    pub destination: u16,
}

impl Ports {
    /// Reads them from the start of a transport header.
    pub(crate) fn read(header: &[u8; 4]) -> Ports {
        let [s0, s1, d0, d1] = *header;
        Ports { source: u16::from_be_bytes([s0, s1]), destination: u16::from_be_bytes([d0, d1]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_big_endian_source_then_destination() {
        assert_eq!(Ports::read(&[0x9c, 0x40, 0x00, 0x50]), Ports { source: 40000, destination: 80 });
    }
}
