//! The `kubectl bpc map -o json` file: key -> workload names.

use std::collections::HashMap;

use serde::Deserialize;

use crate::Error;

/// One row of the map JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct MapEntry {
    /// Pod IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Workload kind (Deployment, StatefulSet, ...).
    pub kind: String,
    /// Workload name.
    pub workload: String,
    /// Key as `0x%08x` or decimal.
    pub key: String,
    /// Pod name.
    #[serde(default)]
    pub pod: Option<String>,
}

/// Key -> "namespace/kind/name".
#[derive(Debug, Clone, Default)]
pub struct WorkloadMap {
    names: HashMap<u32, String>,
}

impl WorkloadMap {
    /// Parses the JSON array.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let rows: Vec<MapEntry> =
            serde_json::from_str(text).map_err(|e| Error::Invalid { what: "map", message: e.to_string() })?;
        let mut names = HashMap::new();
        for row in rows {
            let key: bpc_wire::WorkloadKey = row
                .key
                .parse()
                .map_err(|_| Error::Invalid { what: "map", message: format!("bad key {:?}", row.key) })?;
            names.insert(key.0, format!("{}/{}/{}", row.namespace, row.kind.to_lowercase(), row.workload));
        }
        Ok(Self { names })
    }

    /// Reads a map file.
    pub fn load(path: &str) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::File { path: path.to_string(), source })?;
        Self::from_json(&text)
    }

    /// The workload of a key.
    pub fn name(&self, key: u32) -> Option<&str> {
        self.names.get(&key).map(String::as_str)
    }

    /// Keys whose workload is `ns/name` or `ns/kind/name`.
    pub fn find(&self, wanted: &str) -> Option<u32> {
        self.names.iter().find_map(|(k, n)| {
            let parts: Vec<&str> = n.split('/').collect();
            let short = format!("{}/{}", parts[0], parts[2]);
            (n == wanted || short == wanted).then_some(*k)
        })
    }
}
