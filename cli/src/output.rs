//! Printing objects the way kubectl does: `-o yaml|json` (one object, or a
//! `List` of several) and `--diff` as a unified diff of the YAML.

use serde_json::{Value, json};

use crate::Error;

/// `-o` for commands whose output is an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    /// YAML (multi-object output is a `List`).
    Yaml,
    /// JSON (multi-object output is a `List`).
    Json,
}

/// An object as shown to a user: without `managedFields`, as kubectl hides them.
pub fn for_display(mut object: Value) -> Value {
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    object
}

/// Renders objects: the object itself when there is one, a `v1/List` otherwise.
pub fn render(objects: Vec<Value>, format: ObjectFormat) -> Result<String, Error> {
    let value = match objects.len() {
        1 => objects.into_iter().next().expect("one object"),
        _ => {
            json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}})
        }
    };
    match format {
        ObjectFormat::Yaml => yaml_serde::to_string(&value).map_err(|e| Error::Encode(e.to_string())),
        ObjectFormat::Json => serde_json::to_string_pretty(&value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::Encode(e.to_string())),
    }
}

/// A unified diff of two objects' YAML, headed like `kubectl diff`; empty
/// when they are equal.
pub fn diff(name: &str, before: &Value, after: &Value) -> Result<String, Error> {
    let yaml = |v: &Value| yaml_serde::to_string(v).map_err(|e| Error::Encode(e.to_string()));
    let (old, new) = (yaml(before)?, yaml(after)?);
    if old == new {
        return Ok(String::new());
    }
    Ok(similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (live)"), &format!("{name} (changed)"))
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_objects_render_as_a_list_and_one_as_itself() {
        let a = json!({"kind": "Deployment", "metadata": {"name": "a", "managedFields": [{}]}});
        let one = render(vec![for_display(a.clone())], ObjectFormat::Yaml).unwrap();
        assert!(one.starts_with("kind: Deployment") && !one.contains("managedFields"), "{one}");
        let two: Value =
            serde_json::from_str(&render(vec![a.clone(), a], ObjectFormat::Json).unwrap()).unwrap();
        assert_eq!(two["kind"], "List");
        assert_eq!(two["items"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn diff_shows_only_changed_lines_and_is_empty_when_equal() {
        let a = json!({"spec": {"x": 1, "y": 2}});
        let b = json!({"spec": {"x": 1, "y": 3}});
        let d = diff("deployment.apps/web", &a, &b).unwrap();
        assert!(d.starts_with("--- deployment.apps/web (live)\n+++ deployment.apps/web (changed)\n"), "{d}");
        assert!(d.contains("-  y: 2\n+  y: 3\n"), "{d}");
        assert_eq!(diff("x", &a, &a).unwrap(), "");
    }
}
