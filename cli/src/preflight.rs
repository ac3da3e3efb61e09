//! Checks on the sidecar's options made before anything is written: a
//! typo here would otherwise surface as an agent crash-looping in every pod.

use std::net::IpAddr;

use crate::Error;
use crate::sidecar::{MAX_COLLECTORS, SidecarOptions};

/// Compiles a capture filter with libpcap, as the agent will, so that a
/// filter that does not compile is refused up front.
pub fn compile_filter(filter: &str) -> Result<(), Error> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .map_err(|e| Error::Usage(format!("cannot check the filter: libpcap: {e}")))?;
    dead.compile(filter, true).map(drop).map_err(|e| {
        Error::Usage(format!(
            "the filter '{filter}' does not compile: {e}; it takes tcpdump syntax, try it with \
             tcpdump -d '{filter}'"
        ))
    })
}

fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks one collector: an IPv4/IPv6 address or a DNS name, no port.
pub fn check_collector(collector: &str) -> Result<(), Error> {
    if collector.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some((host, port)) = collector.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && (host.parse::<IpAddr>().is_ok() || is_dns_name(host.trim_matches(['[', ']'])))
    {
        return Err(Error::Usage(format!(
            "collector '{collector}' has a port, but GRE has no ports: use --collector {host}"
        )));
    }
    if is_dns_name(collector) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "collector '{collector}' is neither an IP address nor a DNS name: use an address like 10.0.0.5 or a \
         name like collector.monitoring.svc"
    )))
}

/// Checks every option that can be checked without a cluster.
pub fn check_options(options: &SidecarOptions) -> Result<(), Error> {
    if options.collectors.is_empty() {
        return Err(Error::Usage("at least one --collector is needed".into()));
    }
    if options.collectors.len() > MAX_COLLECTORS {
        return Err(Error::Usage(format!(
            "{} collectors given, the agent streams to at most {MAX_COLLECTORS}",
            options.collectors.len()
        )));
    }
    for c in &options.collectors {
        check_collector(c)?;
    }
    if let Some(f) = &options.filter {
        compile_filter(f)?;
    }
    if options.snaplen == Some(0) {
        return Err(Error::Usage("--snaplen 0 would send empty frames: give at least 64".into()));
    }
    if options.metrics_port == 0 {
        return Err(Error::Usage("--metrics-port must be 1-65535".into()));
    }
    let encap = options.encap.unwrap_or_default();
    if options.gre_profile == Some(bpc_contract::GreProfile::Netis) && encap != bpc_contract::Encap::Gre {
        return Err(Error::Usage(format!(
            "--gre-profile netis is a GRE profile: it does not combine with --encap {encap}"
        )));
    }
    if options.vni.is_some() && encap != bpc_contract::Encap::Vxlan {
        return Err(Error::Usage(format!("--vni applies to --encap vxlan, not {encap}")));
    }
    let erspan = matches!(encap, bpc_contract::Encap::ErspanIi | bpc_contract::Encap::ErspanIii);
    if options.session.is_some() && !erspan {
        return Err(Error::Usage(format!(
            "--session applies to --encap erspan-ii or erspan-iii, not {encap}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_options_that_do_not_fit_together_are_usage_errors() {
        use crate::sidecar::GreProfile;
        let with = |f: fn(&mut SidecarOptions)| {
            let mut o = SidecarOptions::with_collectors(&["198.18.0.2"]);
            f(&mut o);
            check_options(&o)
        };
        assert!(with(|o| o.encap = Some(bpc_contract::Encap::ErspanIii)).is_ok());
        assert!(with(|o| (o.encap, o.vni) = (Some(bpc_contract::Encap::Vxlan), Some(7))).is_ok());
        for bad in [
            with(|o| (o.encap, o.gre_profile) = (Some(bpc_contract::Encap::Vxlan), Some(GreProfile::Netis))),
            with(|o| o.vni = Some(7)),
            with(|o| (o.encap, o.session) = (Some(bpc_contract::Encap::Vxlan), Some(3))),
        ] {
            assert!(matches!(bad, Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn valid_filters_compile_and_invalid_ones_name_the_problem() {
        compile_filter("tcp port 443 or udp port 53").unwrap();
        compile_filter("").unwrap();
        let e = compile_filter("tcp prot 443").unwrap_err().to_string();
        assert!(e.contains("tcp prot 443") && e.contains("tcpdump"), "{e}");
    }

    #[test]
    fn collectors_accept_addresses_and_dns_names() {
        for c in [
            "198.18.0.2",
            "2001:db8::1",
            "collector",
            "collector.monitoring.svc.cluster.local",
            "a-b.example.",
        ] {
            check_collector(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    }

    #[test]
    fn collectors_with_ports_or_junk_are_refused() {
        let e = check_collector("198.18.0.2:4789").unwrap_err().to_string();
        assert!(e.contains("no ports") && e.contains("--collector 198.18.0.2"), "{e}");
        assert!(check_collector("collector.svc:80").unwrap_err().to_string().contains("no ports"));
        for c in ["", "http://x", "a..b", "-x.com", "x_y", "a b"] {
            assert!(check_collector(c).is_err(), "{c}");
        }
    }

    #[test]
    fn options_check_counts_collectors_and_compiles_the_filter() {
        let mut o = SidecarOptions::with_collectors(&["a", "b", "c", "d", "e"]);
        assert!(check_options(&o).unwrap_err().to_string().contains("at most 4"));
        o.collectors.truncate(1);
        check_options(&o).unwrap();
        o.filter = Some("port".into());
        assert!(check_options(&o).is_err());
        o.filter = None;
        o.snaplen = Some(0);
        assert!(check_options(&o).is_err());
    }
}
