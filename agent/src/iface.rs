//! Which interface to capture on, and what the agent needs to know about it.
//!
//! In a pod the network namespace normally has `lo` and `eth0`; the default
//! route tells which one carries the pod's traffic without guessing names.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// `ARPHRD_ETHER`: frames start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`: Linux loopback also carries a (zeroed) Ethernet header.
const ARPHRD_LOOPBACK: u16 = 772;
/// `IFF_UP` in /sys/class/net/*/flags.
const IFF_UP: u32 = 0x1;

/// What the agent knows about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// ifindex, for binding the capture socket.
    pub index: u32,
    /// Own MAC address (decides frame direction in the netis profile).
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// ARPHRD_* link type.
    pub link_type: u16,
    /// Administratively up.
    pub up: bool,
}

impl Interface {
    /// Reads an interface from /sys/class/net.
    pub fn by_name(name: &str) -> Result<Interface> {
        let dir = Path::new("/sys/class/net").join(name);
        if name.is_empty() || name.contains('/') || !dir.exists() {
            let known = names().join(", ");
            return Err(Error::Interface(format!(
                "interface {name:?} does not exist in this network namespace (seen: {known}); \
                 set --interface (BPC_INTERFACE) to one of them or leave it unset for the default-route interface"
            )));
        }
        let read =
            |file: &str| fs::read_to_string(dir.join(file)).map(|s| s.trim().to_owned()).unwrap_or_default();
        Ok(Interface {
            name: name.to_owned(),
            index: read("ifindex").parse().unwrap_or(0),
            mac: bpc_wire::parse_mac(&read("address")).unwrap_or([0; 6]),
            mtu: read("mtu").parse().unwrap_or(1500),
            link_type: read("type").parse().unwrap_or(0),
            up: u32::from_str_radix(read("flags").trim_start_matches("0x"), 16)
                .is_ok_and(|f| f & IFF_UP != 0),
        })
    }

    /// Whether captured frames start with an Ethernet header (all the GRE
    /// payload type 0x6558 can carry).
    pub fn is_ethernet(&self) -> bool {
        matches!(self.link_type, ARPHRD_ETHER | ARPHRD_LOOPBACK)
    }

    /// The interface's `rx_dropped` counter (what libpcap reports as ps_ifdrop).
    pub fn rx_dropped(&self) -> u64 {
        fs::read_to_string(Path::new("/sys/class/net").join(&self.name).join("statistics/rx_dropped"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Names of all interfaces in this network namespace, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The interface to capture on: `explicit`, else the default-route
/// interface, else the only non-loopback interface that is up.
pub fn choose(explicit: Option<&str>) -> Result<Interface> {
    if let Some(name) = explicit {
        return Interface::by_name(name);
    }
    let route = fs::read_to_string("/proc/net/route").unwrap_or_default();
    let ipv6_route = fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    if let Some(name) = crate::route::default_route_interface(&route, &ipv6_route) {
        return Interface::by_name(&name);
    }
    let up: Vec<Interface> = names()
        .iter()
        .filter_map(|n| Interface::by_name(n).ok())
        .filter(|i| i.up && i.link_type != ARPHRD_LOOPBACK)
        .collect();
    match <[Interface; 1]>::try_from(up) {
        Ok([only]) => Ok(only),
        Err(up) if up.is_empty() => Err(Error::Interface(
            "no default route and no non-loopback interface is up: set --interface (BPC_INTERFACE)".into(),
        )),
        Err(up) => Err(Error::Interface(format!(
            "no default route and several interfaces are up ({}): choose one with --interface (BPC_INTERFACE)",
            up.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The `--list-interfaces` table: every interface, its state, addresses and
/// which one the agent would pick.
pub fn listing() -> String {
    let chosen = choose(None).ok().map(|i| i.name);
    let addresses = pcap::Device::list().unwrap_or_default();
    let mut out = String::from("NAME             STATE  MTU    MAC                ADDRESSES\n");
    for name in names() {
        let Ok(i) = Interface::by_name(&name) else { continue };
        let addrs: Vec<String> = addresses
            .iter()
            .filter(|d| d.name == name)
            .flat_map(|d| d.addresses.iter().map(|a| a.addr.to_string()))
            .collect();
        let mac = i.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let mark =
            if chosen.as_deref() == Some(name.as_str()) { "  (default capture interface)" } else { "" };
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:<6} {:<18} {}{}",
            name,
            if i.up { "up" } else { "down" },
            i.mtu,
            mac,
            if addrs.is_empty() { "-".to_owned() } else { addrs.join(",") },
            mark
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_readable_and_counts_as_ethernet() {
        let lo = Interface::by_name("lo").unwrap();
        assert!(lo.index > 0 && lo.is_ethernet());
        let e = Interface::by_name("bpc-no-such0").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("lo"), "{e}");
    }
}
