//! `--expect 'key=K packets>=N loss=0 reorder<=M'`: assertions on a report.

use crate::Error;
use crate::map::WorkloadMap;
use crate::receiver::Report;

/// One parsed expectation.
#[derive(Debug, Clone)]
pub struct Expectation {
    text: String,
    key: u32,
    checks: Vec<(String, String, u64)>,
}

impl Expectation {
    /// Parses `key=K|workload=NS/NAME|workload=NS/KIND/NAME` then `field OP N` terms.
    pub fn parse(text: &str, map: &WorkloadMap) -> Result<Self, Error> {
        let bad = |m: String| Error::Invalid { what: "--expect", message: m };
        let mut words = text.split_whitespace();
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
        let mut checks = Vec::new();
        for w in words {
            let pos = w.find(['>', '<', '=']).ok_or_else(|| bad(format!("no comparison in {w}")))?;
            let (field, rest) = w.split_at(pos);
            let op_len = if rest[1..].starts_with('=') { 2 } else { 1 };
            let (op, num) = rest.split_at(op_len);
            if !["packets", "bytes", "loss", "reorder", "dup", "restarts"].contains(&field) {
                return Err(bad(format!("unknown field {field}")));
            }
            if !["=", ">=", "<=", ">", "<"].contains(&op) {
                return Err(bad(format!("unknown comparison {op}")));
            }
            let n = num.parse().map_err(|_| bad(format!("bad number {num}")))?;
            checks.push((field.to_string(), op.to_string(), n));
        }
        Ok(Self { text: text.to_string(), key, checks })
    }

    /// None when it holds, otherwise why not.
    pub fn check(&self, report: &Report) -> Option<String> {
        let name = format!("0x{:08x}", self.key);
        let streams: Vec<_> = report.streams.iter().filter(|s| s.key == name).collect();
        let sum =
            |f: &dyn Fn(&crate::receiver::StreamReport) -> u64| streams.iter().map(|s| f(s)).sum::<u64>();
        let mut fails = Vec::new();
        for (field, op, n) in &self.checks {
            let v = match field.as_str() {
                "packets" => sum(&|s| s.packets),
                "bytes" => sum(&|s| s.bytes),
                "loss" => sum(&|s| s.lost),
                "reorder" => sum(&|s| s.reordered),
                "dup" => sum(&|s| s.duplicated),
                _ => sum(&|s| s.restarts),
            };
            let ok = match op.as_str() {
                "=" => v == *n,
                ">=" => v >= *n,
                "<=" => v <= *n,
                ">" => v > *n,
                _ => v < *n,
            };
            if !ok {
                fails.push(format!("{field}={v} (wanted {field}{op}{n})"));
            }
        }
        (!fails.is_empty()).then(|| format!("{}: {}", self.text, fails.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::StreamReport;

    fn report(key: &str, packets: u64, lost: u64) -> Report {
        let s = StreamReport {
            key: key.into(),
            workload: None,
            source: "198.18.0.1".into(),
            profile: "standard".into(),
            packets,
            bytes: packets * 100,
            lost,
            reordered: 0,
            duplicated: 0,
            restarts: 0,
            first_seen: 0.0,
            last_seen: 0.0,
            rate_pps: 0.0,
            directions: None,
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
        assert_eq!(m.name(0x10), Some("shop/deployment/checkout"));
        let r = report("0x00000010", 5, 0);
        assert!(Expectation::parse("workload=shop/checkout packets=5", &m).unwrap().check(&r).is_none());
        for bad in ["", "packets=5", "key=0x10 jitter=1", "key=0x10 packets~5", "key=zz packets=1"] {
            assert!(Expectation::parse(bad, &m).is_err(), "{bad}");
        }
    }
}
