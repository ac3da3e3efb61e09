//! Views of a report: Graphviz DOT and the live top-edges lines.

use std::fmt::Write as _;

use super::schema::{NodeType, PathEdge, PathsReport};

fn rate(e: &PathEdge) -> f64 {
    let span = e.last_seen - e.first_seen;
    if span > 0.0 { (e.packets_to_server + e.packets_to_client) as f64 / span } else { 0.0 }
}

/// The label of an edge: port, Service, connections, rate, p99.
pub fn edge_label(e: &PathEdge) -> String {
    let mut s = format!("{}/{}", e.protocol, e.port);
    if let Some(svc) = &e.service {
        let _ = write!(s, " via {svc}");
    }
    let _ = write!(s, "\n{} conn, {:.1} pkt/s", e.connections, rate(e));
    if let Some(r) = &e.handshake_rtt_us {
        let _ = write!(s, ", p99 {:.2} ms", r.p99_us as f64 / 1000.0);
    }
    if e.resets > 0 {
        let _ = write!(s, ", {} rst", e.resets);
    }
    s
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// `PREFIX.dot`: one node per workload (`namespace/name`), one edge per path.
pub fn render_dot(r: &PathsReport) -> String {
    let mut s = String::from(
        "digraph paths {\n  rankdir=LR;\n  node [shape=box, style=\"rounded\", fontname=\"Helvetica\"];\n  \
         edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for n in &r.nodes {
        let (shape, style) = match (n.node_type, n.attached) {
            (NodeType::External, _) => ("ellipse", "dashed"),
            (NodeType::Node, _) => ("box3d", "solid"),
            (NodeType::Service, _) => ("hexagon", "solid"),
            (NodeType::Workload, true) => ("box", "rounded,bold"),
            (NodeType::Workload, false) => ("box", "rounded,dashed"),
        };
        let label = if n.kind.is_empty() { n.id.clone() } else { format!("{}\n{}", n.id, n.kind) };
        let _ = writeln!(
            s,
            "  {} [label={}, shape={shape}, style=\"{style}\"];",
            dot_quote(&n.id),
            dot_quote(&label)
        );
    }
    for e in &r.edges {
        let _ = writeln!(
            s,
            "  {} -> {} [label={}];",
            dot_quote(&e.client),
            dot_quote(&e.server),
            dot_quote(&edge_label(e))
        );
    }
    s.push_str("}\n");
    s
}

/// The top `n` edges by packets, one short line each (the live view).
pub fn top_edges(r: &PathsReport, n: usize) -> Vec<String> {
    let mut edges: Vec<&PathEdge> = r.edges.iter().collect();
    edges.sort_by_key(|e| std::cmp::Reverse(e.packets_to_server + e.packets_to_client));
    edges
        .into_iter()
        .take(n)
        .map(|e| {
            let via = e.service.as_deref().map(|s| format!(" via {s}")).unwrap_or_default();
            format!("{} -> {} {}/{}{via} {} conn", e.client, e.server, e.protocol, e.port, e.connections)
        })
        .collect()
}
