//! `--map FILE` followed during a run.

use std::time::SystemTime;

use crate::Error;
use crate::map::{SharedMap, WorkloadMap};

/// Follows a `--map` file: re-reads it when its modification time or size
/// changes. A file caught half-written fails to parse and is retried on the
/// next change or poll, keeping the previous map.
pub(super) struct MapFile {
    path: String,
    seen: Option<(SystemTime, u64)>,
    failed: bool,
}

impl MapFile {
    /// Reads `path` into `map` and follows it from there. The first read
    /// must succeed: a wrong path is a usage error, not a wait.
    pub(super) fn open(path: &str, map: &SharedMap) -> Result<MapFile, Error> {
        let first = WorkloadMap::load(path)?;
        let mut file = MapFile { path: path.to_string(), seen: None, failed: false };
        file.seen = file.stamp();
        map.write().unwrap().update(first);
        Ok(file)
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Reloads into `map` when changed: `Ok(true)` when it did; `Err` with
    /// what to tell the user when a new version cannot be read (once per
    /// version: the same broken file again is `Ok(false)`).
    pub(super) fn poll(&mut self, map: &SharedMap) -> Result<bool, String> {
        let stamp = self.stamp();
        if stamp.is_none() || (stamp == self.seen && !self.failed) {
            return Ok(false);
        }
        match WorkloadMap::load(&self.path) {
            Ok(newer) => {
                map.write().unwrap().update(newer);
                self.seen = stamp;
                self.failed = false;
                Ok(true)
            }
            Err(e) => {
                let new_failure = !self.failed || stamp != self.seen;
                self.seen = stamp;
                self.failed = true;
                if new_failure { Err(format!("bpc-sim: keeping the previous map: {e}")) } else { Ok(false) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_row(ip: &str, workload: &str) -> String {
        format!(
            r#"[{{"type":"pod","ip":"{ip}","namespace":"shop","kind":"Deployment","workload":"{workload}","key":"7"}}]"#
        )
    }

    #[test]
    fn map_file_is_re_read_when_it_changes_and_a_broken_one_keeps_the_previous_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.json");
        std::fs::write(&path, pod_row("198.18.1.2", "api")).unwrap();
        let shared = SharedMap::default();
        let mut f = MapFile { path: path.to_str().unwrap().into(), seen: None, failed: false };
        assert_eq!(f.poll(&shared), Ok(true));
        assert_eq!(f.poll(&shared), Ok(false), "unchanged file: no reload");
        let peer = |ip: &str| shared.read().unwrap().peer(&ip.parse().unwrap()).map(|p| p.name.clone());
        assert_eq!(peer("198.18.1.2").as_deref(), Some("api"));
        // A new pod IP (longer file: the size changes even within one mtime tick).
        std::fs::write(&path, pod_row("198.18.1.33", "api-new")).unwrap();
        assert_eq!(f.poll(&shared), Ok(true));
        assert_eq!(peer("198.18.1.33").as_deref(), Some("api-new"));
        assert_eq!(peer("198.18.1.2").as_deref(), Some("api"), "the replaced pod keeps its label");
        std::fs::write(&path, "[{\"type\": ").unwrap();
        assert!(f.poll(&shared).is_err_and(|note| note.contains("keeping the previous map")));
        assert_eq!(f.poll(&shared), Ok(false), "the same broken file is told once");
        assert_eq!(peer("198.18.1.33").as_deref(), Some("api-new"));
        std::fs::write(&path, pod_row("198.18.1.44", "db")).unwrap();
        assert_eq!(f.poll(&shared), Ok(true), "a fixed file is read again");
        assert_eq!(peer("198.18.1.44").as_deref(), Some("db"));
    }
}
