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
