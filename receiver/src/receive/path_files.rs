//! `--paths PREFIX`: the path graph written as files a reader can open at
//! any time.

use crate::Error;
use crate::paths::{PathsReport, render_dot};

/// Writes PREFIX.json and PREFIX.dot (each via a temporary file and a
/// rename, so a reader never sees half a file), then PREFIX.svg and
/// PREFIX.png with Graphviz's `dot` when it is installed. Returns whether
/// the pictures were drawn.
pub fn write_paths(prefix: &str, report: &PathsReport) -> Result<bool, Error> {
    let put = |ext: &str, text: &str| -> Result<(), Error> {
        let path = format!("{prefix}.{ext}");
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, text).map_err(|source| Error::File { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::File { path, source })
    };
    put("json", &(serde_json::to_string_pretty(report).expect("paths serialise") + "\n"))?;
    put("dot", &render_dot(report))?;
    let mut drawn = true;
    for fmt in ["svg", "png"] {
        let out = format!("{prefix}.{fmt}");
        let tmp = format!("{prefix}.tmp.{fmt}");
        let ok = std::process::Command::new("dot")
            .arg(format!("-T{fmt}"))
            .arg(format!("{prefix}.dot"))
            .arg("-o")
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            std::fs::rename(&tmp, &out).map_err(|source| Error::File { path: out, source })?;
        } else {
            let _ = std::fs::remove_file(&tmp);
            drawn = false;
        }
    }
    Ok(drawn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::WorkloadMap;

    #[test]
    fn path_files_are_written_as_json_dot_svg_and_png_with_no_temporary_left() {
        let report = crate::paths::FlowTable::default().report(
            &WorkloadMap::default(),
            &crate::paths::Capturing::default(),
            1.0,
        );
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        let prefix = prefix.to_str().unwrap();
        let drawn = write_paths(prefix, &report).unwrap();
        let json: PathsReport =
            serde_json::from_str(&std::fs::read_to_string(format!("{prefix}.json")).unwrap()).unwrap();
        assert_eq!(json, report);
        assert!(std::fs::read_to_string(format!("{prefix}.dot")).unwrap().starts_with("digraph paths {"));
        let has_dot = std::process::Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(
            has_dot,
            "Graphviz's dot is needed for this test (scripts/install-deps.sh installs graphviz)"
        );
        assert!(drawn);
        let svg = std::fs::read_to_string(format!("{prefix}.svg")).unwrap();
        assert!(svg.contains("<svg"), "not an SVG: {svg:.80}");
        let png = std::fs::read(format!("{prefix}.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(8)]);
        for leftover in ["json.tmp", "dot.tmp", "tmp.svg", "tmp.png"] {
            assert!(
                !std::path::Path::new(&format!("{prefix}.{leftover}")).exists(),
                "{leftover} left behind"
            );
        }
    }
}
