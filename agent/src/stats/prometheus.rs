//! `/metrics`: the counters as Prometheus text (exposition format 0.0.4).

use std::fmt::Write as _;
use std::time::Instant;

use bpc_contract::stats::CollectorStats;

use super::Stats;
use super::counters::load;

impl Stats {
    /// Everything, as `/metrics` reports it (Prometheus text format 0.0.4).
    pub fn prometheus(&self, now: Instant) -> String {
        let s = self.snapshot(now);
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP bpc_agent_{name} {help}\n# TYPE bpc_agent_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "bpc_agent_{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v as f64)];
        metric(
            "info",
            "gauge",
            "Agent identity: version, GRE key, workload, interface, effective filter, profile, oversize mode.",
            &[(
                labels(&[
                    ("version", &s.version),
                    ("key", &s.key),
                    ("workload", s.workload.as_deref().unwrap_or("")),
                    ("interface", &s.interface),
                    ("filter", &s.filter),
                    ("profile", s.profile.as_str()),
                    ("oversize", s.oversize.as_str()),
                ]),
                1.0,
            )],
        );
        metric("up", "gauge", "1 while healthy (see /healthz), else 0.", &one(u64::from(s.health.ok)));
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the agent started.",
            &[(String::new(), s.uptime_seconds)],
        );
        let cap = &s.capture;
        for (name, help, value) in [
            ("captured_packets_total", "Frames the capture filter accepted.", cap.packets),
            ("captured_bytes_total", "Bytes of the captured frames.", cap.bytes),
            (
                "kernel_drops_total",
                "Frames the kernel dropped because the capture ring was full (pcap ps_drop).",
                cap.kernel_drops,
            ),
            (
                "interface_drops_total",
                "Frames the interface dropped since the agent started (pcap ps_ifdrop, rx_dropped).",
                cap.interface_drops,
            ),
            ("truncated_total", "Frames sent shorter than captured.", cap.truncated),
            ("segmented_total", "Super-frames split into segments or fragments.", cap.segmented),
            ("segments_total", "Frames produced by splitting super-frames.", load(&self.capture.segments)),
            ("rate_limited_total", "Frames dropped by --max-pps/--max-mbps.", cap.rate_limited),
        ] {
            metric(name, "counter", help, &one(value));
        }
        if let Some(t) = self.capture.last_packet.unix(self.started_unix) {
            metric(
                "last_packet_timestamp_seconds",
                "gauge",
                "Unix time of the last captured frame.",
                &[(String::new(), t)],
            );
        }
        let per = |f: &dyn Fn(&CollectorStats) -> u64| -> Vec<(String, f64)> {
            s.collectors.iter().map(|c| (labels(&[("collector", &c.host)]), f(c) as f64)).collect()
        };
        metric(
            "sent_packets_total",
            "counter",
            "GRE packets sent, per collector.",
            &per(&|c| c.sent_packets),
        );
        metric(
            "sent_bytes_total",
            "counter",
            "GRE payload bytes sent, per collector.",
            &per(&|c| c.sent_bytes),
        );
        let mut errors = Vec::new();
        for c in &s.collectors {
            for (kind, v) in [
                ("unreachable", c.errors.unreachable),
                ("no_buffer", c.errors.no_buffer),
                ("resolve", c.errors.resolve),
                ("other", c.errors.other),
            ] {
                errors.push((labels(&[("collector", &c.host), ("kind", kind)]), v as f64));
            }
        }
        metric(
            "send_errors_total",
            "counter",
            "Failed sends (and DNS resolutions) per collector, by kind.",
            &errors,
        );
        let last: Vec<(String, f64)> = self
            .collectors
            .iter()
            .filter_map(|c| {
                c.last_send.unix(self.started_unix).map(|t| (labels(&[("collector", &c.host)]), t))
            })
            .collect();
        if !last.is_empty() {
            metric(
                "last_send_timestamp_seconds",
                "gauge",
                "Unix time of the last successful send, per collector.",
                &last,
            );
        }
        let resolved: Vec<(String, f64)> = s
            .collectors
            .iter()
            .map(|c| {
                let addr = c.address.map(|a| a.to_string()).unwrap_or_default();
                (labels(&[("collector", &c.host), ("address", &addr)]), f64::from(u8::from(!addr.is_empty())))
            })
            .collect();
        let h = s.http.unwrap_or_default();
        let outcomes: Vec<(String, f64)> = [
            ("served", h.served),
            ("timeout", h.timeout),
            ("bad_request", h.bad_request),
            ("evicted", h.evicted),
            ("closed", h.closed),
        ]
        .iter()
        .map(|(outcome, v)| (labels(&[("outcome", outcome)]), *v as f64))
        .collect();
        metric(
            "http_connections_total",
            "counter",
            "Connections to this endpoint by how they ended: served, timeout (deadline from accept), \
             bad_request (400/414/431), evicted (over the connection bound), closed (client left first).",
            &outcomes,
        );
        metric(
            "collector_resolved",
            "gauge",
            "1 when the collector has an address, with that address.",
            &resolved,
        );
        if let Some(path) = s.capture.forwarding_delay.and_then(|d| d.path) {
            metric(
                "capture_path",
                "gauge",
                "1 for the path frames of up to an MTU take now: prompt (each frame as captured, low \
                 rates) or blocks (TPACKET_V3 blocks, high rates).",
                &[(labels(&[("path", path.as_str())]), 1.0)],
            );
        }
        self.delay_histogram(&mut out);
        out
    }

    /// `forwarding_delay_seconds`: a histogram, its buckets the 1-2-5 series
    /// of the agent's finer ones (the `/stats` percentiles use all).
    fn delay_histogram(&self, out: &mut String) {
        const NAME: &str = "bpc_agent_forwarding_delay_seconds";
        let h = &self.capture.forwarding_delay;
        let counts = h.counts();
        let _ = writeln!(
            out,
            "# HELP {NAME} From a frame's capture timestamp to its send: the error it adds to response \
             times measured at the collector.\n# TYPE {NAME} histogram"
        );
        for (bound_ns, n) in counts.cumulative() {
            let leading = bound_ns / 10u64.pow(bound_ns.ilog10());
            if matches!(leading, 1 | 2 | 5) && bound_ns % 10u64.pow(bound_ns.ilog10()) == 0 {
                let _ = writeln!(out, "{NAME}_bucket{{le=\"{}\"}} {n}", bound_ns as f64 / 1e9);
            }
        }
        let total = counts.total();
        let _ = writeln!(out, "{NAME}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{NAME}_sum {}", h.sum_seconds());
        let _ = writeln!(out, "{NAME}_count {total}");
    }
}
/// `{a="x",b="y"}` with Prometheus label escaping.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"");
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fixture::resolved;

    #[test]
    fn prometheus_text_has_every_family_and_escapes_labels() {
        let s = resolved();
        *s.filter.lock().unwrap() = "tcp and not (host \"x\")".into();
        s.capture.heartbeat.set(s.started, s.started);
        s.collectors[0].sent_packets.store(7, Ordering::Relaxed);
        s.collectors[0].last_send.set(s.started, s.started);
        let text = s.prometheus(s.started);
        for family in [
            "info",
            "up",
            "captured_packets_total",
            "captured_bytes_total",
            "kernel_drops_total",
            "interface_drops_total",
            "truncated_total",
            "segmented_total",
            "rate_limited_total",
            "sent_packets_total",
            "sent_bytes_total",
            "send_errors_total",
            "last_send_timestamp_seconds",
            "http_connections_total",
            "forwarding_delay_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE bpc_agent_{family} ")), "missing {family}:\n{text}");
        }
        assert!(
            text.contains("bpc_agent_sent_packets_total{collector=\"collector.monitoring.svc\"} 7"),
            "{text}"
        );
        assert!(text.contains("filter=\"tcp and not (host \\\"x\\\")\""), "{text}");
        assert!(text.contains(
            "bpc_agent_send_errors_total{collector=\"collector.monitoring.svc\",kind=\"no_buffer\"} 0"
        ));
        assert!(text.contains("bpc_agent_forwarding_delay_seconds_bucket{le=\"0.00005\"} 0"), "{text}");
        assert!(text.contains("bpc_agent_forwarding_delay_seconds_count 0"), "{text}");
        // No sample line may be malformed: name{labels} value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
