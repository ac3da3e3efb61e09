//! What an edit changed, as a short list of structural changes between the
//! object before and after: keys added at the end of a mapping, items added
//! at the end of a list, keys and items removed, values replaced. Both the
//! in-place text editor ([`super::lossless`]) and `--kustomize`'s JSON patch
//! ([`super::kustomize`]) are built from this list, so what they write is
//! exactly what [`crate::sidecar::inject`] / [`crate::sidecar::uninject`]
//! decided, computed once.

use std::fmt;

use serde_json::Value;

/// One step of a path into a document: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path from the document's root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// This path with `seg` appended.
    pub fn child(&self, seg: Seg) -> Path {
        let mut p = self.0.clone();
        p.push(seg);
        Path(p)
    }

    /// The path as an RFC 6901 JSON pointer ("/spec/template").
    pub fn pointer(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => format!("/{i}"),
            })
            .collect()
    }
}

impl fmt::Display for Path {
    /// kubectl's field notation: `spec.template.spec.containers[1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the document");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One structural change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A key added at the end of the mapping at `map`.
    AddKey {
        /// The mapping.
        map: Path,
        /// The new key.
        key: String,
        /// Its value.
        value: Value,
    },
    /// A key removed from the mapping at `map`.
    RemoveKey {
        /// The mapping.
        map: Path,
        /// The key.
        key: String,
    },
    /// Items added at the end of the list at `seq`.
    Append {
        /// The list.
        seq: Path,
        /// The new items, in order.
        items: Vec<Value>,
    },
    /// Items added at the start of the list at `seq` (a native sidecar goes
    /// first of the init containers).
    Prepend {
        /// The list.
        seq: Path,
        /// The new items, in order.
        items: Vec<Value>,
    },
    /// The item at `index` (in the list before the change) removed.
    RemoveItem {
        /// The list.
        seq: Path,
        /// Index of the item, counted in the original list.
        index: usize,
    },
    /// The value at `at` replaced.
    Replace {
        /// Where.
        at: Path,
        /// The new value.
        value: Value,
    },
}

/// The changes that turn `old` into `new`, or why they cannot be described
/// as additions, removals and replacements in place (keys moved).
pub fn diff(old: &Value, new: &Value) -> Result<Vec<Change>, String> {
    let mut out = Vec::new();
    walk(old, new, &Path::default(), &mut out)?;
    Ok(out)
}

fn walk(old: &Value, new: &Value, at: &Path, out: &mut Vec<Change>) -> Result<(), String> {
    if old == new {
        return Ok(());
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for key in o.keys().filter(|k| !n.contains_key(*k)) {
                out.push(Change::RemoveKey { map: at.clone(), key: key.clone() });
            }
            let kept_old: Vec<&String> = o.keys().filter(|k| n.contains_key(*k)).collect();
            let kept_new: Vec<&String> = n.keys().take(kept_old.len()).collect();
            if kept_old != kept_new {
                return Err(format!("the keys of {at} changed order"));
            }
            for key in &kept_old {
                walk(&o[*key], &n[*key], &at.child(Seg::Key((*key).clone())), out)?;
            }
            for (key, value) in n.iter().skip(kept_old.len()) {
                out.push(Change::AddKey { map: at.clone(), key: key.clone(), value: value.clone() });
            }
        }
        (Value::Array(o), Value::Array(n)) if n.len() > o.len() && n[..o.len()] == o[..] => {
            out.push(Change::Append { seq: at.clone(), items: n[o.len()..].to_vec() });
        }
        (Value::Array(o), Value::Array(n)) if n.len() > o.len() && n[n.len() - o.len()..] == o[..] => {
            out.push(Change::Prepend { seq: at.clone(), items: n[..n.len() - o.len()].to_vec() });
        }
        (Value::Array(o), Value::Array(n)) if n.len() < o.len() && removed(o, n).is_some() => {
            for index in removed(o, n).unwrap_or_default() {
                out.push(Change::RemoveItem { seq: at.clone(), index });
            }
        }
        (Value::Array(o), Value::Array(n)) if n.len() == o.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                walk(a, b, &at.child(Seg::Index(i)), out)?;
            }
        }
        _ => out.push(Change::Replace { at: at.clone(), value: new.clone() }),
    }
    Ok(())
}

/// The indexes of `old` to remove to get `new`, when `new` is `old` with
/// some items taken out (first match kept).
fn removed(old: &[Value], new: &[Value]) -> Option<Vec<usize>> {
    let mut gone = Vec::new();
    let mut rest = new.iter().peekable();
    for (i, item) in old.iter().enumerate() {
        if rest.peek() == Some(&item) {
            rest.next();
        } else {
            gone.push(i);
        }
    }
    rest.peek().is_none().then_some(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn added_keys_and_items_are_additions_at_the_end() {
        let old = json!({"a": 1, "l": [1, 2]});
        let new = json!({"a": 1, "l": [1, 2, 3], "b": {"c": 2}});
        assert_eq!(
            diff(&old, &new).unwrap(),
            [
                Change::Append { seq: Path(vec![key("l")]), items: vec![json!(3)] },
                Change::AddKey { map: Path::default(), key: "b".into(), value: json!({"c": 2}) },
            ]
        );
    }

    #[test]
    fn items_added_before_the_old_ones_are_a_prepend() {
        let old = json!({"l": [{"name": "a"}]});
        let new = json!({"l": [{"name": "x"}, {"name": "a"}]});
        assert_eq!(
            diff(&old, &new).unwrap(),
            [Change::Prepend { seq: Path(vec![key("l")]), items: vec![json!({"name": "x"})] }]
        );
    }

    #[test]
    fn removals_name_the_original_index_and_key() {
        let old = json!({"a": 1, "l": [1, 2, 3], "z": 0});
        let new = json!({"l": [1, 3], "z": 0});
        assert_eq!(
            diff(&old, &new).unwrap(),
            [
                Change::RemoveKey { map: Path::default(), key: "a".into() },
                Change::RemoveItem { seq: Path(vec![key("l")]), index: 1 },
            ]
        );
    }

    #[test]
    fn other_changes_replace_the_smallest_value_that_differs() {
        let old = json!({"c": [{"n": "x", "e": [1, 2]}]});
        let new = json!({"c": [{"n": "y", "e": [3]}]});
        let at = |s: &str| Path(vec![key("c"), Seg::Index(0), key(s)]);
        assert_eq!(
            diff(&old, &new).unwrap(),
            [
                Change::Replace { at: at("n"), value: json!("y") },
                Change::Replace { at: at("e"), value: json!([3]) },
            ]
        );
        assert!(diff(&json!({"a": 1, "b": 2}), &json!({"b": 3, "a": 1})).unwrap_err().contains("order"));
        assert!(diff(&old, &old).unwrap().is_empty());
    }

    #[test]
    fn paths_print_as_kubectl_fields_and_json_pointers() {
        let p = Path(vec![key("spec"), key("containers"), Seg::Index(1), key("a/b~")]);
        assert_eq!(p.to_string(), "spec.containers[1].a/b~");
        assert_eq!(p.pointer(), "/spec/containers/1/a~1b~0");
    }
}
