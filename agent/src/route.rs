//! Routing as the kernel sees it from inside the pod: the IPv4 table
//! (`/proc/net/route`), the IPv6 table's default routes, the neighbour
//! table (`/proc/net/arp`) and the path MTU. The capture picks its interface
//! from the default route; the TX ring, which bypasses the kernel's routing,
//! its egress and next hop (`txring::link_to`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `RTF_UP` and `RTF_GATEWAY` in the route tables' flags column.
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
/// ATF_COM: the neighbour entry has a hardware address.
const ATF_COM: u32 = 0x2;

/// One usable row of `/proc/net/route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ipv4Route<'a> {
    iface: &'a str,
    destination: u32,
    gateway: Ipv4Addr,
    flags: u32,
    metric: u32,
    mask: u32,
}

fn hex_ipv4(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints the address as a native-endian u32.
    u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// The routes of `/proc/net/route` text that are up (rows that do not parse are skipped).
fn ipv4_routes(route: &str) -> impl Iterator<Item = Ipv4Route<'_>> {
    route.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        let r = Ipv4Route {
            iface: f[0],
            destination: u32::from(hex_ipv4(f[1])?),
            gateway: hex_ipv4(f[2])?,
            flags: u32::from_str_radix(f[3], 16).unwrap_or(0),
            metric: f[6].parse().unwrap_or(u32::MAX),
            mask: u32::from(hex_ipv4(f[7])?),
        };
        (r.flags & RTF_UP != 0).then_some(r)
    })
}

/// The interface of the default route in `/proc/net/route` and
/// `/proc/net/ipv6_route` text (lowest metric wins; IPv4 before IPv6 on a tie).
pub fn default_route_interface(route: &str, ipv6_route: &str) -> Option<String> {
    let mut best: Option<(u32, String)> = None;
    let mut consider = |metric: u32, iface: &str| {
        if iface != "lo" && best.as_ref().is_none_or(|(m, _)| metric < *m) {
            best = Some((metric, iface.to_owned()));
        }
    };
    for r in ipv4_routes(route).filter(|r| r.destination == 0 && r.mask == 0) {
        consider(r.metric, r.iface);
    }
    for line in ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let flags = u32::from_str_radix(f[8], 16).unwrap_or(0);
        if f[0].bytes().all(|b| b == b'0') && f[1] == "00" && flags & RTF_UP != 0 {
            consider(u32::from_str_radix(f[5], 16).unwrap_or(u32::MAX), f[9]);
        }
    }
    best.map(|(_, iface)| iface)
}

/// Egress interface and next hop for `dst` from `/proc/net/route` text:
/// longest matching prefix, then lowest metric. The next hop is the gateway,
/// or `dst` itself on a directly connected route.
pub fn next_hop(route: &str, dst: Ipv4Addr) -> Option<(String, Ipv4Addr)> {
    let mut best: Option<(u32, u32, &str, Ipv4Addr)> = None;
    for r in ipv4_routes(route).filter(|r| u32::from(dst) & r.mask == r.destination & r.mask) {
        let prefix = r.mask.count_ones();
        if best.is_none_or(|(p, m, _, _)| prefix > p || (prefix == p && r.metric < m)) {
            let hop = if r.flags & RTF_GATEWAY != 0 { r.gateway } else { dst };
            best = Some((prefix, r.metric, r.iface, hop));
        }
    }
    best.map(|(_, _, iface, hop)| (iface.to_owned(), hop))
}

/// The MAC address of neighbour `ip` on `iface` from `/proc/net/arp` text,
/// if the entry is complete.
pub fn neighbour_mac(arp: &str, ip: Ipv4Addr, iface: &str) -> Option<[u8; 6]> {
    arp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != iface || f[0].parse::<Ipv4Addr>().ok()? != ip {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        let mac = bpc_wire::parse_mac(f[3])?;
        (flags & ATF_COM != 0 && mac != [0; 6]).then_some(mac)
    })
}

/// The MTU of the route to `ip` (what the outer GRE packet must fit), from a
/// connected UDP socket; `None` when there is no route.
pub fn path_mtu(ip: IpAddr) -> Option<u32> {
    let socket = std::net::UdpSocket::bind(if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    socket.connect(SocketAddr::new(ip, 9)).ok()?;
    let (level, name) =
        if ip.is_ipv4() { (libc::IPPROTO_IP, libc::IP_MTU) } else { (libc::IPPROTO_IPV6, libc::IPV6_MTU) };
    let mtu: libc::c_int =
        crate::packet_socket::getsockopt(&socket, level, name, "read the path MTU").ok()?;
    (mtu > 0).then_some(mtu as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const ROUTE6_LO_ONLY: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
        00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

    #[test]
    fn default_route_interface_comes_from_the_ipv4_table() {
        assert_eq!(default_route_interface(ROUTE, ROUTE6_LO_ONLY).as_deref(), Some("eth0"));
    }

    #[test]
    fn an_ipv6_only_pod_uses_the_ipv6_default_route_and_ignores_lo() {
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  fe800000000000000000000000000001 00000400 00000001 00000000 00000003     net1\n";
        let only_header = ROUTE.lines().next().unwrap();
        assert_eq!(
            default_route_interface(only_header, &format!("{ROUTE6_LO_ONLY}{v6}")).as_deref(),
            Some("net1")
        );
    }

    #[test]
    fn lowest_metric_default_route_wins() {
        let route = format!("{ROUTE}eth1\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n").replacen(
            "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0",
            "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100",
            1,
        );
        assert_eq!(default_route_interface(&route, "").as_deref(), Some("eth1"));
    }

    #[test]
    fn no_default_route_gives_none() {
        let route = ROUTE.lines().filter(|l| !l.contains("\t00000000\t0101")).collect::<Vec<_>>().join("\n");
        assert_eq!(default_route_interface(&route, ROUTE6_LO_ONLY), None);
    }

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101FEA9\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0101FEA9\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
net1\t007912C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
net2\t007912C6\t00000000\t0001\t0\t0\t10\t00FFFFFF\t0\t0\t0
";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_connected_subnet_is_reached_directly_and_the_lowest_metric_wins() {
        if cfg!(target_endian = "big") {
            return; // the fixture is little-endian /proc text
        }
        assert_eq!(next_hop(ROUTES, ip("198.18.121.2")), Some(("net1".into(), ip("198.18.121.2"))));
    }

    #[test]
    fn anything_else_goes_via_the_default_gateway() {
        if cfg!(target_endian = "big") {
            return;
        }
        assert_eq!(next_hop(ROUTES, ip("10.96.0.10")), Some(("eth0".into(), ip("169.254.1.1"))));
    }

    #[test]
    fn no_route_means_no_next_hop() {
        let only_subnet = ROUTES.lines().take(1).chain(ROUTES.lines().skip(3)).collect::<Vec<_>>().join("\n");
        assert_eq!(next_hop(&only_subnet, ip("10.0.0.1")), None);
    }

    const ARP: &str = "IP address       HW type     Flags       HW address            Mask     Device
169.254.1.1      0x1         0x6         ee:ee:ee:ee:ee:ee     *        eth0
198.18.121.2     0x1         0x2         0a:1b:2c:3d:4e:5f     *        net1
198.18.121.3     0x1         0x0         00:00:00:00:00:00     *        net1
";

    #[test]
    fn complete_neighbour_entries_give_the_mac_on_the_right_interface() {
        assert_eq!(neighbour_mac(ARP, ip("169.254.1.1"), "eth0"), Some([0xee; 6]));
        assert_eq!(
            neighbour_mac(ARP, ip("198.18.121.2"), "net1"),
            Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
        );
        assert_eq!(neighbour_mac(ARP, ip("198.18.121.2"), "eth0"), None);
    }

    #[test]
    fn incomplete_neighbour_entries_are_not_used() {
        assert_eq!(neighbour_mac(ARP, ip("198.18.121.3"), "net1"), None);
        assert_eq!(neighbour_mac(ARP, ip("198.18.121.9"), "net1"), None);
    }

    #[test]
    fn loopback_path_mtu_is_known() {
        let mtu = path_mtu("127.0.0.1".parse().unwrap());
        assert!(mtu.is_some_and(|m| m >= 65_000), "{mtu:?}");
    }
}
