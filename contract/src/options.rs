//! The enums the agent's flags and the CLI's flags both take. The CLI writes
//! them into the sidecar's environment ([`crate::env`]), the agent parses them
//! back and reports them in `/stats`; the status annotation records them.
//!
//! With the `clap` feature each derives `clap::ValueEnum`: the orphan rule
//! leaves no other crate able to implement it for these types.

use serde::{Deserialize, Serialize};

/// What the agent does with a frame longer than fits one GRE packet on the
/// collector path (GSO/GRO super-frames).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// Cut TCP super-frames into MSS segments (other IP: IP fragments), as the NIC would (the default).
    #[default]
    Segment,
    /// Send the frame whole with DF clear; the kernel fragments the GRE packet.
    Fragment,
    /// Cut the frame to what fits and count it as truncated (headers survive, payload is lost).
    Truncate,
}

names!(Oversize, "oversize mode" { Segment => "segment", Fragment => "fragment", Truncate => "truncate" });

/// Which GRE header layout the agent sends (the codec is `bpc_wire::GreProfile`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum GreProfile {
    /// Key = workload key, sequence numbers (RFC 2890) (the default).
    #[default]
    Standard,
    /// pktminerg/Netis compatible: key with direction bits, no sequence.
    #[cfg_attr(feature = "clap", value(alias = "pktminerg"))]
    Netis,
}

names!(GreProfile, "GRE profile" { Standard => "standard", Netis => "netis" | "pktminerg" });

/// The format every captured frame travels in to the collectors (the codecs are
/// `bpc_wire::Encapsulation`; field by field in docs/wire.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Encap {
    /// GRE (protocol 0x6558), in the profile of `--gre-profile` (the default).
    #[default]
    Gre,
    /// VXLAN over UDP (port 4789): VNI from the workload key, no sequence numbers.
    Vxlan,
    /// ERSPAN type II (GRE 0x88BE): session ID from the workload key, sequence numbers.
    #[cfg_attr(feature = "clap", value(name = "erspan-ii", alias = "erspan2"))]
    ErspanIi,
    /// ERSPAN type III (GRE 0x22EB): as type II, plus the capture time in nanoseconds and the direction.
    #[cfg_attr(feature = "clap", value(name = "erspan-iii", alias = "erspan3"))]
    ErspanIii,
}

names!(Encap, "encapsulation" {
    Gre => "gre",
    Vxlan => "vxlan",
    ErspanIi => "erspan-ii" | "erspan2",
    ErspanIii => "erspan-iii" | "erspan3",
});

/// How the agent hands GRE packets to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    /// An AF_PACKET TX ring for IPv4 collectors once their next hop is resolved, else the raw
    /// socket (the default).
    #[default]
    Auto,
    /// Always the raw GRE socket: keeps the pod's own netfilter OUTPUT rules and policy routing
    /// in the path.
    Raw,
}

names!(SendPath, "send path" { Auto => "auto", Raw => "raw" });

/// What the agent does when capture cannot start (no NET_RAW, no such
/// interface, a filter the kernel refuses) or fails later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Exit with the error's status (the default for a command-line capture).
    #[default]
    Exit,
    /// Keep serving the endpoint with the reason in `/healthz` and `/stats`, and `/startupz`
    /// passing, until stopped: the sidecars' choice, so that an agent that cannot capture
    /// never keeps the app from starting or gets its pod restarted.
    Serve,
}

names!(OnError, "on-error action" { Exit => "exit", Serve => "serve" });

/// A word that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNameError {
    /// What was being parsed, e.g. `GRE profile`.
    pub what: &'static str,
    /// The word as given.
    pub value: String,
    /// The names that would have been accepted.
    pub expected: &'static [&'static str],
}

// Written by hand: this crate takes serde only, not thiserror.
impl std::fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} {:?}: expected {}", self.what, self.value, self.expected.join(", "))
    }
}

impl std::error::Error for ParseNameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_and_display_as_the_serde_name() {
        for o in [Oversize::Segment, Oversize::Fragment, Oversize::Truncate] {
            assert_eq!(o.to_string().to_uppercase().parse::<Oversize>(), Ok(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        for p in [GreProfile::Standard, GreProfile::Netis] {
            assert_eq!(p.to_string().parse::<GreProfile>(), Ok(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for s in [SendPath::Auto, SendPath::Raw] {
            assert_eq!(format!(" {s} ").parse::<SendPath>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn encap_names_travel_as_the_flag_values() {
        for e in [Encap::Gre, Encap::Vxlan, Encap::ErspanIi, Encap::ErspanIii] {
            assert_eq!(e.to_string().parse::<Encap>(), Ok(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        assert_eq!(Encap::ErspanIii.as_str(), "erspan-iii");
        assert_eq!("ERSPAN2".parse::<Encap>(), Ok(Encap::ErspanIi));
        assert_eq!(Encap::default(), Encap::Gre);
    }

    #[test]
    fn pktminerg_is_another_name_of_the_netis_profile() {
        assert_eq!("pktminerg".parse::<GreProfile>(), Ok(GreProfile::Netis));
        assert_eq!(GreProfile::Netis.to_string(), "netis");
    }

    #[test]
    fn an_unknown_name_is_an_error_that_lists_the_accepted_ones() {
        let e = "drop".parse::<Oversize>().unwrap_err();
        assert_eq!(e.to_string(), "unknown oversize mode \"drop\": expected segment, fragment, truncate");
    }

    #[test]
    fn display_pads_to_the_requested_width() {
        assert_eq!(format!("[{:<9}]", SendPath::Raw), "[raw      ]");
    }

    #[test]
    fn defaults_are_the_agents_defaults() {
        assert_eq!(
            (Oversize::default(), GreProfile::default(), SendPath::default()),
            (Oversize::Segment, GreProfile::Standard, SendPath::Auto)
        );
    }
}
