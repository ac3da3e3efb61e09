//! `--expect 'key=K [source=IP] packets>=N loss=0 reorder<=M'`: assertions on
//! a report, evaluated over the key's streams (all of them, or one source's).

use std::net::IpAddr;

use crate::Error;
use crate::map::WorkloadMap;
use crate::receiver::{Report, StreamReport, summarize_keys};

/// A count an expectation checks, over the selected streams of one key;
/// `--expect` names it in snake case (`packets`, `restarted_streams`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Field {
    Packets,
    Bytes,
    Loss,
    Reorder,
    Dup,
    Restarts,
    Streams,
    RestartedStreams,
    SeqRestarts,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::Packets,
        Field::Bytes,
        Field::Loss,
        Field::Reorder,
        Field::Dup,
        Field::Restarts,
        Field::Streams,
        Field::RestartedStreams,
        Field::SeqRestarts,
    ];

    fn parse(name: &str) -> Option<Field> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }

    fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    fn of(self, k: &crate::receiver::KeyReport) -> u64 {
        match self {
            Field::Packets => k.packets,
            Field::Bytes => k.bytes,
            Field::Loss => k.lost,
            Field::Reorder => k.reordered,
            Field::Dup => k.duplicated,
            Field::Restarts => k.restarts,
            Field::Streams => k.streams,
            Field::RestartedStreams => k.restarted_streams,
            Field::SeqRestarts => k.sequence_restarts,
        }
    }
}

/// How a count compares with the expected number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    AtLeast,
    AtMost,
    Above,
    Below,
}

impl Comparison {
    fn parse(symbol: &str) -> Option<Comparison> {
        Some(match symbol {
            "=" => Comparison::Equal,
            ">=" => Comparison::AtLeast,
            "<=" => Comparison::AtMost,
            ">" => Comparison::Above,
            "<" => Comparison::Below,
            _ => return None,
        })
    }

    /// In the order of the variants (a test holds it to `parse`).
    fn symbol(self) -> &'static str {
        ["=", ">=", "<=", ">", "<"][self as usize]
    }

    fn holds(self, value: u64, expected: u64) -> bool {
        match self {
            Comparison::Equal => value == expected,
            Comparison::AtLeast => value >= expected,
            Comparison::AtMost => value <= expected,
            Comparison::Above => value > expected,
            Comparison::Below => value < expected,
        }
    }
}

/// One `field OP N` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    field: Field,
    comparison: Comparison,
    expected: u64,
}

/// One parsed expectation.
#[derive(Debug, Clone)]
pub struct Expectation {
    text: String,
    key: u32,
    source: Option<IpAddr>,
    checks: Vec<Check>,
}

impl Expectation {
    /// Parses `key=K|workload=NS/NAME|workload=NS/KIND/NAME|NAME-IN-MAP`, an
    /// optional `source=IP`, then `field OP N` terms.
    pub fn parse(text: &str, map: &WorkloadMap) -> Result<Self, Error> {
        let bad = |m: String| Error::Invalid { what: "--expect", message: m };
        let mut words = text.split_whitespace().peekable();
        let sel = words.next().ok_or_else(|| bad("empty".into()))?;
        let key = if let Some(k) = sel.strip_prefix("key=") {
            k.parse::<bpc_wire::WorkloadKey>().map_err(|_| bad(format!("bad key {k}")))?.0
        } else if let Some(w) = sel.strip_prefix("workload=") {
            match map.find(w) {
                Some(k) => k,
                None => {
                    let p: Vec<&str> = w.split('/').collect();
                    match p.as_slice() {
                        [ns, name] => bpc_wire::WorkloadKey::from_workload(ns, "deployment", name).0,
                        [ns, kind, name] => bpc_wire::WorkloadKey::from_workload(ns, kind, name).0,
                        _ => return Err(bad(format!("workload must be NS/NAME or NS/KIND/NAME: {w}"))),
                    }
                }
            }
        } else {
            return Err(bad(format!("must start with key= or workload=: {text}")));
        };
        let source = match words.peek().and_then(|w| w.strip_prefix("source=")) {
            Some(ip) => {
                let ip = ip.parse().map_err(|_| bad(format!("bad source address {ip}")))?;
                words.next();
                Some(ip)
            }
            None => None,
        };
        let mut checks = Vec::new();
        for w in words {
            let pos = w.find(['>', '<', '=']).ok_or_else(|| bad(format!("no comparison in {w}")))?;
            let (field, rest) = w.split_at(pos);
            let op_len = if rest[1..].starts_with('=') { 2 } else { 1 };
            let (op, num) = rest.split_at(op_len);
            let names = || Field::ALL.map(Field::name).join(", ");
            let field = Field::parse(field)
                .ok_or_else(|| bad(format!("unknown field {field} (one of {})", names())))?;
            let comparison = Comparison::parse(op).ok_or_else(|| bad(format!("unknown comparison {op}")))?;
            let expected = num.parse().map_err(|_| bad(format!("bad number {num}")))?;
            checks.push(Check { field, comparison, expected });
        }
        if checks.is_empty() {
            return Err(bad(format!("nothing to check in {text}")));
        }
        Ok(Self { text: text.to_string(), key, source, checks })
    }

    /// None when it holds, otherwise why not.
    pub fn check(&self, report: &Report) -> Option<String> {
        let key = bpc_wire::WorkloadKey(self.key);
        // Each stream under the key as its format sends it (netis: the
        // keybit; VXLAN: the VNI; ERSPAN: the session ID).
        let sent = |s: &StreamReport| {
            bpc_wire::WorkloadKey(bpc_wire::Encap::received_id(key, s.profile)).to_string()
        };
        let streams: Vec<StreamReport> = report
            .streams
            .iter()
            .filter(|s| s.key == sent(s) && self.source.is_none_or(|ip| s.source == ip))
            .cloned()
            .collect();
        // No stream at all is a key with every count zero.
        let k = summarize_keys(&streams).pop().unwrap_or_default();
        let mut fails = Vec::new();
        for c in &self.checks {
            let v = c.field.of(&k);
            if !c.comparison.holds(v, c.expected) {
                let (field, op, n) = (c.field.name(), c.comparison.symbol(), c.expected);
                fails.push(format!("{field}={v} (wanted {field}{op}{n})"));
            }
        }
        (!fails.is_empty()).then(|| format!("{}: {}", self.text, fails.join(", ")))
    }

    /// The expectation as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_comparison_parses_back_from_the_name_it_shows() {
        for f in Field::ALL {
            assert_eq!(Field::parse(&f.name()), Some(f));
        }
        assert_eq!(Field::parse("restarted_streams"), Some(Field::RestartedStreams));
        assert_eq!(Field::parse("Packets"), None);
        use Comparison::*;
        for c in [Equal, AtLeast, AtMost, Above, Below] {
            assert_eq!(Comparison::parse(c.symbol()), Some(c));
        }
        assert_eq!(Comparison::parse("=>"), None);
    }
    use crate::receiver::ReceivedProfile;

    fn report(key: &str, packets: u64, lost: u64) -> Report {
        let source = "198.18.0.1".parse().unwrap();
        let s = StreamReport {
            packets,
            bytes: packets * 100,
            lost,
            ..StreamReport::new(key, source, ReceivedProfile::Standard)
        };
        Report { streams: vec![s], ..Default::default() }
    }

    #[test]
    fn every_comparison_operator_is_applied() {
        let m = WorkloadMap::default();
        let r = report("0x00000010", 100, 2);
        for (e, ok) in [
            ("key=16 packets=100", true),
            ("key=0x10 packets>=100 loss<=2", true),
            ("key=0x10 packets>100", false),
            ("key=0x10 packets<100", false),
            ("key=0x10 loss=0", false),
            ("key=0x10 bytes>9999", true),
        ] {
            assert_eq!(Expectation::parse(e, &m).unwrap().check(&r).is_none(), ok, "{e}");
        }
    }

    #[test]
    fn workload_selector_uses_the_workload_key_of_a_deployment_by_default() {
        let m = WorkloadMap::default();
        let k = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "web");
        let r = report(&k.to_string(), 5, 0);
        assert!(Expectation::parse("workload=shop/web packets=5", &m).unwrap().check(&r).is_none());
        assert!(
            Expectation::parse("workload=shop/deployment/web packets=5", &m).unwrap().check(&r).is_none()
        );
        assert!(
            Expectation::parse("workload=shop/statefulset/web packets=5", &m).unwrap().check(&r).is_some()
        );
    }

    #[test]
    fn map_names_resolve_and_malformed_expectations_are_rejected() {
        let m = WorkloadMap::from_json(
            r#"[{"ip":"198.18.1.2","namespace":"shop","kind":"Deployment","workload":"checkout","key":"0x00000010","pod":"p","node":"n","attached":true}]"#,
        )
        .unwrap();
        assert_eq!(m.name(0x10, ReceivedProfile::Standard), Some("shop/deployment/checkout"));
        let r = report("0x00000010", 5, 0);
        assert!(Expectation::parse("workload=shop/checkout packets=5", &m).unwrap().check(&r).is_none());
        for bad in [
            "",
            "packets=5",
            "key=0x10",
            "key=0x10 jitter=1",
            "key=0x10 packets~5",
            "key=zz packets=1",
            "key=0x10 source=nowhere packets=1",
        ] {
            assert!(Expectation::parse(bad, &m).is_err(), "{bad}");
        }
    }

    fn stream(source: &str, first: f64, last: f64, packets: u64, restarts: u64) -> StreamReport {
        StreamReport {
            source: source.parse().unwrap(),
            first_seen: first,
            last_seen: last,
            restarts,
            ..report("0x00000020", packets, 0).streams.remove(0)
        }
    }

    /// One stream: source, first_seen, last_seen, packets, sequence restarts.
    type Stream = (&'static str, f64, f64, u64, u64);

    /// Key 0x20 with one stream per entry.
    fn streams_of_0x20(streams: &[Stream]) -> Report {
        let streams = streams
            .iter()
            .map(|&(source, first, last, packets, restarts)| stream(source, first, last, packets, restarts));
        Report { streams: streams.collect(), ..Default::default() }
    }

    #[test]
    fn a_workload_selects_its_netis_stream_by_the_keybit_the_agent_sends() {
        let key = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "web");
        let keybit = key.as_sent(bpc_wire::GreProfile::Netis);
        let mut r = report(&keybit.to_string(), 12, 0);
        r.streams[0].profile = ReceivedProfile::Netis;
        let m = WorkloadMap::default();
        let holds = |e: &str| Expectation::parse(e, &m).unwrap().check(&r).is_none();
        assert!(holds("workload=shop/web packets=12"), "the netis stream is the workload's");
        assert!(holds(&format!("key={key} packets=12")));
        r.streams[0].profile = ReceivedProfile::Standard;
        let holds = |e: &str| Expectation::parse(e, &m).unwrap().check(&r).is_none();
        assert!(!holds("workload=shop/web packets=12"), "a standard stream must carry the full key");
    }

    #[test]
    fn a_new_source_after_the_old_one_went_silent_counts_as_a_restart_of_the_key() {
        let m = WorkloadMap::default();
        // Pod .1 stops at t=10, pod .2 runs throughout, pod .3 appears at t=12.
        let r = streams_of_0x20(&[
            ("198.18.0.1", 0.0, 10.0, 10, 0),
            ("198.18.0.2", 1.0, 20.0, 20, 0),
            ("198.18.0.3", 12.0, 20.0, 30, 0),
        ]);
        let holds = |e: &str| Expectation::parse(e, &m).unwrap().check(&r).is_none();
        assert!(holds("key=0x20 streams=3 restarted_streams=1 restarts=1 seq_restarts=0 packets=60"));
        assert!(!holds("key=0x20 restarts=0"));
        assert!(holds("key=0x20 source=198.18.0.3 packets=30 streams=1 restarts=0"));
        assert!(!holds("key=0x20 source=198.18.0.9 packets>0"), "an absent source has no packets");
    }

    #[test]
    fn a_scale_up_is_not_a_restart_and_each_silent_stream_is_taken_over_only_once() {
        let m = WorkloadMap::default();
        // Why, the streams of key 0x20 (source, first, last, packets, sequence restarts), what holds.
        let cases: [(&str, &[Stream], &str); 2] = [
            (
                "both sources overlap in time: two live pods, not a replacement",
                &[("198.18.0.1", 0.0, 10.0, 10, 1), ("198.18.0.2", 5.0, 20.0, 20, 0)],
                "key=0x20 restarted_streams=0 seq_restarts=1 restarts=1",
            ),
            (
                "one pod went away, two new ones came: one replacement, one scale-up",
                &[
                    ("198.18.0.1", 0.0, 10.0, 1, 0),
                    ("198.18.0.2", 11.0, 20.0, 1, 0),
                    ("198.18.0.3", 12.0, 20.0, 1, 0),
                ],
                "key=0x20 restarted_streams=1",
            ),
        ];
        for (why, streams, holds) in cases {
            assert_eq!(
                Expectation::parse(holds, &m).unwrap().check(&streams_of_0x20(streams)),
                None,
                "{why}"
            );
        }
    }
}
