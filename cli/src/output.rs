//! Standard output, the one way every command writes its results, and
//! printing objects the way kubectl does: `-o yaml|json` (one object, or a
//! `List` of several) and `--diff` as a unified diff of the YAML.
//!
//! The policy: results go to standard output through [`stdout`] or
//! [`print`], whose write errors are returned, never a panic; a reader that
//! closes the pipe early (`| head`) ends the command quietly with exit 0, as
//! ripgrep does ([`Error::is_closed_pipe`], handled once, in `main`).
//! Progress, notes and errors go to standard error.

use std::io::{IsTerminal, Write};

use serde_json::{Value, json};

use crate::Error;

/// Standard output, locked, for a command's results.
pub fn stdout() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

/// Whether standard output is a terminal (marks and colours for people).
pub fn is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> Result<(), Error> {
    let mut out = stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

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
        ObjectFormat::Yaml => Ok(yaml_serde::to_string(&value)?),
        ObjectFormat::Json => serde_json::to_string_pretty(&value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(Error::from),
    }
}

/// A unified diff of two objects' YAML, headed like `kubectl diff`; empty
/// when they are equal.
pub fn diff(name: &str, before: &Value, after: &Value) -> Result<String, Error> {
    let yaml = |v: &Value| yaml_serde::to_string(v).map_err(Error::from);
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
