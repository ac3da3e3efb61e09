//! The text form of a report (`-o text`): the per-stream and per-key
//! tables, totals, malformed reasons, top flows, latency and notes.

use crate::receiver::Report;

/// Columns of the per-stream table: heading and width (negative: left-aligned).
const STREAM_COLUMNS: &[(&str, isize)] = &[
    ("KEY", -12),
    ("WORKLOAD", -32),
    ("SOURCE", -16),
    ("PROFILE", -9),
    ("PACKETS", 10),
    ("BYTES", 12),
    ("LOST", 6),
    ("REORDER", 7),
    ("DUP", 5),
    ("RESTARTS", 8),
    ("PPS", 10),
];

/// Columns of the per-key table.
const KEY_COLUMNS: &[(&str, isize)] = &[
    ("KEY", -12),
    ("WORKLOAD", -32),
    ("STREAMS", 7),
    ("PACKETS", 10),
    ("BYTES", 12),
    ("LOST", 6),
    ("RESTARTS", 8),
    ("SEQ_RESTARTS", 12),
    ("RESTARTED_STREAMS", 17),
];

/// One table line: each cell padded to its column, one space between.
fn table_line(columns: &[(&str, isize)], cells: &[String]) -> String {
    debug_assert_eq!(columns.len(), cells.len());
    let mut line: Vec<String> = Vec::with_capacity(cells.len());
    for ((_, width), cell) in columns.iter().zip(cells) {
        let w = width.unsigned_abs();
        line.push(if *width < 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") });
    }
    line.join(" ") + "\n"
}

fn table_header(columns: &[(&str, isize)]) -> String {
    let headings: Vec<String> = columns.iter().map(|(heading, _)| heading.to_string()).collect();
    table_line(columns, &headings)
}

/// The first cells of a row: the key and its workload, `-` when unmapped.
fn key_cells(key: &str, workload: &Option<String>) -> Vec<String> {
    vec![key.to_string(), workload.as_deref().unwrap_or("-").to_string()]
}

/// Renders the report as a text table.
pub fn render_text(r: &Report) -> String {
    let mut s = table_header(STREAM_COLUMNS);
    for st in &r.streams {
        let mut cells = key_cells(&st.key, &st.workload);
        cells.extend([st.source.to_string(), st.profile.to_string()]);
        cells.extend(
            [st.packets, st.bytes, st.lost, st.reordered, st.duplicated, st.restarts].map(|n| n.to_string()),
        );
        cells.push(format!("{:.0}", st.rate_pps));
        s += &table_line(STREAM_COLUMNS, &cells);
        if let Some(d) = st.directions {
            s += &format!(
                "    directions: inbound {} outbound {} unknown {}\n",
                d.inbound, d.outbound, d.unknown
            );
        }
    }
    if !r.keys.is_empty() {
        s += "\n";
        s += &table_header(KEY_COLUMNS);
        for k in &r.keys {
            let counts =
                [k.streams, k.packets, k.bytes, k.lost, k.restarts, k.sequence_restarts, k.restarted_streams];
            let mut cells = key_cells(&k.key, &k.workload);
            cells.extend(counts.map(|n| n.to_string()));
            s += &table_line(KEY_COLUMNS, &cells);
        }
    }
    s += &format!(
        "total: {} packets, {} bytes, {} lost, {} malformed in {:.1}s\n",
        r.totals.packets, r.totals.bytes, r.totals.lost, r.totals.malformed, r.elapsed_seconds
    );
    for (k, v) in &r.malformed {
        s += &format!("malformed {k}: {v}\n");
    }
    if !r.top_flows.is_empty() {
        s += "top flows:\n";
        for f in &r.top_flows {
            s += &format!(
                "  {} {} -> {}  {} packets {} bytes\n",
                f.protocol, f.source, f.destination, f.packets, f.bytes
            );
        }
    }
    if let Some(l) = &r.latency {
        s += &format!(
            "latency: {} samples p50 {:.1}us p99 {:.1}us max {:.1}us\n",
            l.samples, l.p50_us, l.p99_us, l.max_us
        );
    }
    for n in &r.notes {
        s += &format!("note: {n}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_report_lines_up_every_cell_under_its_heading() {
        use crate::receiver::{DirectionCounts, KeyReport, StreamReport};
        // Through the JSON schema: [packets, bytes, lost, reordered, duplicated, restarts].
        let stream = |key: &str, workload: Option<&str>, source: &str, profile: &str, counts: [u64; 6]| {
            let [packets, bytes, lost, reordered, duplicated, restarts] = counts;
            serde_json::from_value::<StreamReport>(serde_json::json!({
                "key": key, "workload": workload, "source": source, "profile": profile,
                "packets": packets, "bytes": bytes, "lost": lost, "reordered": reordered,
                "duplicated": duplicated, "restarts": restarts, "first_seen": 0.0, "last_seen": 0.0,
                "rate_pps": 0.0, "directions": null,
            }))
            .unwrap()
        };
        let checkout = Some("shop/deployment/checkout");
        let r = Report {
            streams: vec![
                StreamReport {
                    rate_pps: 99.6,
                    ..stream("0x00000005", checkout, "198.18.1.2", "standard", [1200, 345678, 2, 1, 0, 1])
                },
                StreamReport {
                    directions: Some(DirectionCounts { inbound: 3, outbound: 4, unknown: 0 }),
                    ..stream("0x00000006", None, "198.18.1.3", "netis", [7, 420, 0, 0, 0, 0])
                },
            ],
            keys: vec![KeyReport {
                key: "0x00000005".into(),
                workload: checkout.map(str::to_string),
                streams: 2,
                packets: 1200,
                bytes: 345678,
                lost: 2,
                restarts: 1,
                sequence_restarts: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render_text(&r);
        let tables: Vec<&str> = text.lines().take_while(|l| !l.starts_with("total:")).collect();
        assert_eq!(
            tables,
            [
                "KEY          WORKLOAD                         SOURCE           PROFILE      PACKETS        BYTES   LOST REORDER   DUP RESTARTS        PPS",
                "0x00000005   shop/deployment/checkout         198.18.1.2       standard        1200       345678      2       1     0        1        100",
                "0x00000006   -                                198.18.1.3       netis              7          420      0       0     0        0          0",
                "    directions: inbound 3 outbound 4 unknown 0",
                "",
                "KEY          WORKLOAD                         STREAMS    PACKETS        BYTES   LOST RESTARTS SEQ_RESTARTS RESTARTED_STREAMS",
                "0x00000005   shop/deployment/checkout               2       1200       345678      2        1            1                 0",
            ]
        );
    }
}
