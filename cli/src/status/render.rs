//! The report for people: `table` and `wide` (marks, one line per pod,
//! hints under failures), and the JSON document.

use std::io::Write;

use super::StatusFormat;
use super::judge::drops;
use super::report::{StatusReport, Verdict};
use crate::Error;
use crate::pod_proxy::AgentStats;
use bpc_contract::stats::ForwardingDelay;

/// Writes the report in the chosen format.
pub fn render(
    report: &StatusReport,
    format: StatusFormat,
    marks: Marks,
    out: &mut impl Write,
) -> Result<(), Error> {
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
        StatusFormat::Table | StatusFormat::Wide => {
            if report.workloads.is_empty() {
                writeln!(out, "no attached workload found (kubectl bpc attach KIND/NAME to start)")?;
            } else {
                render_text(report, format == StatusFormat::Wide, marks, out)?;
            }
        }
    }
    Ok(())
}

/// Marks for OK / not OK: `√`/`×` on a terminal, `[ok]`/`[FAIL]` otherwise
/// so logs and grep stay ASCII.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    ok: &'static str,
    fail: &'static str,
    /// A pod on its way out: neither OK nor a failure by itself.
    leaving: &'static str,
}

impl Marks {
    /// Unicode marks for a terminal.
    pub const TTY: Marks = Marks { ok: "√", fail: "×", leaving: "-" };
    /// ASCII marks for pipes and files.
    pub const PLAIN: Marks = Marks { ok: "[ok]", fail: "[FAIL]", leaving: "[--]" };

    fn of(&self, v: Verdict) -> &'static str {
        match v {
            Verdict::Ok => self.ok,
            Verdict::Terminating => self.leaving,
            _ => self.fail,
        }
    }
}

fn age(a: Option<f64>) -> String {
    a.map_or("-".into(), |a| format!("{a:.1}s"))
}

/// The agent's forwarding delay over its recent window: `p50/p99` in
/// microseconds (what a probe timing the mirror adds to response times), in
/// milliseconds once the p99 reaches 10 ms (`--batch`: `667/995ms`, not
/// `666667/994857us`).
fn forwarding_delay(d: ForwardingDelay) -> String {
    match (d.p50_us, d.p99_us) {
        (Some(p50), Some(p99)) if p99 >= 10_000.0 => format!("{:.0}/{:.0}ms", p50 / 1000.0, p99 / 1000.0),
        (Some(p50), Some(p99)) => format!("{p50:.0}/{p99:.0}us"),
        _ => "-".into(),
    }
}

/// Renders the report for people (`table` or `wide`).
pub fn render_text(
    report: &StatusReport,
    wide: bool,
    marks: Marks,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for w in &report.workloads {
        let r = w.rollout;
        writeln!(
            out,
            "{} {}/{}/{}  rollout: {} desired, {} updated, {} ready  {}",
            marks.of(w.judgement.verdict),
            w.namespace,
            w.kind.lower(),
            w.name,
            r.desired,
            r.updated,
            r.ready,
            w.judgement.verdict.label()
        )?;
        if w.pods.is_empty() {
            if let Some(h) = &w.judgement.hint {
                writeln!(out, "    {}\n    hint: {h}", w.judgement.reason)?;
            }
            writeln!(out)?;
            continue;
        }
        let mut rows: Vec<[String; 15]> = Vec::new();
        for p in &w.pods {
            let s = p.stats.as_ref();
            let c = s.map(|s| &s.capture);
            let num = |f: &dyn Fn(&AgentStats) -> u64| s.map_or("-".into(), |s| f(s).to_string());
            rows.push([
                marks.of(p.judgement.verdict).to_owned(),
                p.name.clone(),
                p.node.clone().unwrap_or_else(|| "-".into()),
                p.ip.clone().unwrap_or_else(|| "-".into()),
                p.agent.as_ref().map_or("-".into(), |a| a.state.as_str().to_owned()),
                p.agent.as_ref().map_or("-".into(), |a| a.restarts.to_string()),
                num(&|s| s.capture.packets),
                num(&drops),
                num(&|s| s.collectors.iter().map(|c| c.sent_packets).sum()),
                num(&|s| s.collectors.iter().map(|c| c.errors.failing()).sum()),
                age(c.and_then(|c| c.last_packet_age_seconds)),
                p.judgement.verdict.label().to_owned(),
                s.map_or("-".into(), |s| s.key.clone()),
                s.map_or("-".into(), |s| {
                    s.collectors
                        .iter()
                        .map(|c| c.address.map_or_else(|| c.host.clone(), |a| a.to_string()))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                c.and_then(|c| c.forwarding_delay).map_or("-".into(), forwarding_delay),
            ]);
        }
        let header = [
            "",
            "POD",
            "NODE",
            "IP",
            "AGENT",
            "RESTARTS",
            "CAPTURED",
            "DROPS",
            "SENT",
            "SEND-ERRORS",
            "LAST-PKT",
            "VERDICT",
            "KEY",
            "COLLECTORS",
            "FWD-DELAY",
        ];
        let mut buf = Vec::new();
        if wide {
            crate::map::write_table(&mut buf, &header, &rows)?;
        } else {
            let short: Vec<[String; 12]> =
                rows.iter().map(|r| std::array::from_fn(|i| r[i].clone())).collect();
            let h: [&str; 12] = std::array::from_fn(|i| header[i]);
            crate::map::write_table(&mut buf, &h, &short)?;
        }
        for line in String::from_utf8_lossy(&buf).lines() {
            writeln!(out, "  {line}")?;
        }
        for p in w.pods.iter().filter(|p| p.judgement.verdict != Verdict::Ok) {
            writeln!(out, "    {} {}: {}", p.name, p.judgement.verdict.label(), p.judgement.reason)?;
            if let Some(h) = &p.judgement.hint {
                writeln!(out, "      hint: {h}")?;
            }
            for l in &p.logs {
                writeln!(out, "      | {l}")?;
            }
        }
        if w.judgement.verdict == Verdict::NotAttached
            && let Some(h) = &w.judgement.hint
        {
            writeln!(out, "    hint: {h}")?;
        }
        writeln!(out)?;
    }
    let s = report.summary;
    let leaving = match s.pods_terminating {
        0 => String::new(),
        n => format!(" ({n} terminating)"),
    };
    writeln!(
        out,
        "{} {} of {} workloads OK, {} of {} pods OK{leaving}",
        marks.of(if report.ok { Verdict::Ok } else { Verdict::NotAttached }),
        s.workloads - s.workloads_not_ok,
        s.workloads,
        s.pods_ok,
        s.pods
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_delay_is_in_microseconds_and_in_milliseconds_from_a_10_ms_p99() {
        let d = |p50, p99| {
            forwarding_delay(ForwardingDelay {
                path: None,
                window_seconds: 10.0,
                frames: 100,
                p50_us: Some(p50),
                p99_us: Some(p99),
            })
        };
        assert_eq!(d(94.4, 243.0), "94/243us");
        assert_eq!(d(2_500.0, 9_999.0), "2500/9999us");
        assert_eq!(d(666_667.0, 994_857.0), "667/995ms");
    }
}
