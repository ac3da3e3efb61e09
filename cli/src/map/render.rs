//! The map as a table, JSON (the shared contract) or CSV.

use std::io::Write;

use crate::Error;

use super::*;

/// Writes the map in the chosen format.
pub fn render(rows: &[MapEntry], format: MapFormat, out: &mut impl Write) -> Result<(), Error> {
    match format {
        MapFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        MapFormat::Csv => {
            // `type` last: readers of the schema 1 columns keep their positions.
            writeln!(out, "ip,namespace,kind,workload,key,pod,node,attached,type")?;
            for r in rows {
                let fields = [&r.ip, &r.namespace, &r.kind, &r.workload, &r.key, &r.pod, &r.node];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{},{},{}", line.join(","), r.attached, type_name(r.row_type))?;
            }
        }
        MapFormat::Table => {
            let header = ["TYPE", "IP", "NAMESPACE", "KIND", "WORKLOAD", "KEY", "POD", "NODE", "ATTACHED"];
            let body: Vec<[String; 9]> = rows
                .iter()
                .map(|r| {
                    [
                        type_name(r.row_type).to_owned(),
                        r.ip.clone(),
                        r.namespace.clone(),
                        r.kind.clone(),
                        r.workload.clone(),
                        r.key.clone(),
                        if r.row_type == RowType::Service { backends_text(r) } else { r.pod.clone() },
                        r.node.clone(),
                        if r.attached { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            write_table(out, &header, &body)?;
        }
    }
    Ok(())
}

/// Writes left-aligned columns separated by three spaces, like `kubectl get`.
pub(crate) fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub(super) fn type_name(t: RowType) -> &'static str {
    match t {
        RowType::Pod => "pod",
        RowType::Service => "service",
        RowType::Node => "node",
    }
}

/// A Service's backends in the table's POD column: `-> Deployment/api,...`.
pub(super) fn backends_text(r: &MapEntry) -> String {
    if r.backends.is_empty() {
        return "-> (none)".into();
    }
    let names: Vec<String> = r.backends.iter().map(|b| format!("{}/{}", b.kind, b.workload)).collect();
    format!("-> {}", names.join(","))
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use bpc_wire::WorkloadKey;

    use super::*;
    use crate::map::fixture::*;

    #[test]
    fn json_output_is_the_shared_contract_array() {
        let owners = OwnerCache::from_replica_sets([&web_rs()]);
        let rows = build_map(&[web_pod("198.18.1.2", true)], &owners);
        let mut out = Vec::new();
        render(&rows, MapFormat::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let key = WorkloadKey::from_workload("shop", "Deployment", "web").to_string();
        assert_eq!(
            v,
            json!([{"type": "pod", "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "web",
                "key": key, "pod": "web-5f6c7d8b9-abcde", "node": "node-1", "attached": true,
                "profile": "standard"}])
        );
    }

    #[test]
    fn csv_output_has_header_and_quotes_only_when_needed() {
        let mut row = entries_of_pod(&web_pod("198.18.1.2", false), &OwnerCache::default()).remove(0);
        row.node = "odd,node".into();
        let mut out = Vec::new();
        render(&[row.clone()], MapFormat::Csv, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = format!(
            "ip,namespace,kind,workload,key,pod,node,attached,type\n\
             198.18.1.2,shop,Deployment,web,{},web-5f6c7d8b9-abcde,\"odd,node\",false,pod\n",
            row.key
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn table_output_aligns_columns() {
        let rows = build_map(&[web_pod("198.18.1.2", true)], &OwnerCache::default());
        let mut out = Vec::new();
        render(&rows, MapFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("NAMESPACE"), lines[1].find("shop"));
        assert_eq!(lines[0].find("ATTACHED"), lines[1].find("yes"));
        assert!(lines[1].starts_with("pod "), "{text}");
    }
}
