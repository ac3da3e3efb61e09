//! Plain scalars as kubectl reads them. kubectl decodes YAML with go-yaml v2
//! (YAML 1.1): `yes`, `on`, `y` and their spellings are booleans, `0777`
//! is octal, `1_000` is a thousand. serde's YAML reader follows YAML 1.2,
//! where all of those are strings (or decimal). A manifest saying
//! `hostNetwork: yes` runs its pods in the node's network namespace, so a
//! decision taken on the YAML 1.2 reading would be wrong.
//!
//! [`patch`] finds, in the lossless syntax tree, the plain (unquoted)
//! scalars whose YAML 1.1 reading differs and puts that reading into the
//! value serde produced, so every decision sees what kubectl sees. Keys are
//! left as serde reads them (kubectl would turn a key `on` into `"true"`; no
//! key we look up is spelled like that). Quoted scalars are strings in both.

use serde_json::{Number, Value};
use yaml_parser::SyntaxKind::*;
use yaml_parser::{SyntaxElement, SyntaxNode};

/// go-yaml v2's booleans (its resolve table), which YAML 1.2 reads as strings
/// except for the `true`/`false` spellings.
pub fn boolean(plain: &str) -> Option<bool> {
    match plain {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// go-yaml v2's integers: underscores dropped, then Go's base prefixes
/// (`0x`, `0o`, `0b`, and a bare leading `0` for octal).
pub fn integer(plain: &str) -> Option<i64> {
    let digits = plain.replace('_', "");
    let (negative, unsigned) = match digits.as_bytes().first()? {
        b'-' => (true, &digits[1..]),
        b'+' => (false, &digits[1..]),
        _ => (false, digits.as_str()),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (8, oct)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (2, bin)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(body, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// The value kubectl reads from a plain scalar, when it is a boolean or an
/// integer (the spellings where YAML 1.1 and 1.2 disagree are among these).
pub fn plain(text: &str) -> Option<Value> {
    if let Some(b) = boolean(text) {
        return Some(Value::Bool(b));
    }
    integer(text).map(|i| Value::Number(Number::from(i)))
}

/// A boolean field as kubectl reads it: a boolean, or a string spelled as
/// a YAML 1.1 boolean (a plain `yes` that reached us as a string; a quoted
/// one is not a boolean for kubectl either, and the API server refuses it,
/// so reading it as one only ever refuses more).
pub fn as_bool(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => boolean(s),
        _ => None,
    }
}

/// Whether a string read by serde could be a plain scalar that YAML 1.1
/// reads otherwise: the cheap test that spares most documents the tree.
fn suspicious(value: &Value) -> bool {
    match value {
        Value::String(s) => plain(s).is_some(),
        Value::Array(a) => a.iter().any(suspicious),
        Value::Object(m) => m.values().any(suspicious),
        _ => false,
    }
}

/// Whether the text has a number YAML 1.2 reads as another number: a
/// leading zero (`0777` is 777 in YAML 1.2, 511 in 1.1) or an underscore
/// between digits (a string in YAML 1.2, a number in 1.1, but caught by
/// [`suspicious`] already).
fn octal_like(source: &str) -> bool {
    let b = source.as_bytes();
    b.windows(3)
        .any(|w| !w[0].is_ascii_alphanumeric() && w[0] != b'.' && w[1] == b'0' && w[2].is_ascii_digit())
}

/// Puts the YAML 1.1 reading of every plain scalar of `source` (one YAML
/// document) into `value`, serde's reading of it. Linear in the size of the
/// document: one walk of its syntax tree, only when serde's value holds a
/// string or number YAML 1.1 might read otherwise.
pub fn patch(source: &str, value: &mut Value) {
    if !suspicious(value) && !octal_like(source) {
        return;
    }
    let Ok(tree) = yaml_parser::parse(source) else { return };
    if let Some(document) = tree.children().find(|n| n.kind() == DOCUMENT) {
        walk_value(&document, value);
    }
}

/// `holder`'s value node (BLOCK or FLOW), applied to `value`.
fn walk_value(holder: &SyntaxNode, value: &mut Value) {
    let Some(wrapper) = holder.children().find(|n| matches!(n.kind(), BLOCK | FLOW)) else { return };
    // A tag (`!!str yes`) says what the scalar is, in both readings.
    if wrapper.children().any(|p| p.kind() == PROPERTIES && p.children().any(|t| t.kind() == TAG_PROPERTY)) {
        return;
    }
    let plains: Vec<_> = wrapper.children_with_tokens().filter(|t| t.kind() == PLAIN_SCALAR).collect();
    // One token: a plain scalar over several lines is a string either way.
    if let [SyntaxElement::Token(t)] = plains.as_slice()
        && let Some(v) = plain(t.text())
    {
        *value = v;
    }
    for n in wrapper.children() {
        match n.kind() {
            BLOCK_MAP => walk_entries(&n, BLOCK_MAP_ENTRY, BLOCK_MAP_KEY, BLOCK_MAP_VALUE, value),
            FLOW_MAP => {
                for entries in n.children().filter(|e| e.kind() == FLOW_MAP_ENTRIES) {
                    walk_entries(&entries, FLOW_MAP_ENTRY, FLOW_MAP_KEY, FLOW_MAP_VALUE, value);
                }
            }
            BLOCK_SEQ => walk_items(n.children().filter(|e| e.kind() == BLOCK_SEQ_ENTRY), value),
            FLOW_SEQ => {
                let entries = n.children().filter(|e| e.kind() == FLOW_SEQ_ENTRIES);
                walk_items(entries.flat_map(|e| e.children().filter(|i| i.kind() == FLOW_SEQ_ENTRY)), value);
            }
            _ => {}
        }
    }
}

fn walk_entries(
    map: &SyntaxNode,
    entry: yaml_parser::SyntaxKind,
    key: yaml_parser::SyntaxKind,
    val: yaml_parser::SyntaxKind,
    value: &mut Value,
) {
    let Value::Object(object) = value else { return };
    for e in map.children().filter(|n| n.kind() == entry) {
        let Some(name) = e.children().find(|n| n.kind() == key).and_then(|k| key_text(&k)) else { continue };
        if let (Some(v), Some(holder)) = (object.get_mut(&name), e.children().find(|n| n.kind() == val)) {
            walk_value(&holder, v);
        }
    }
}

fn walk_items(items: impl Iterator<Item = SyntaxNode>, value: &mut Value) {
    let Value::Array(array) = value else { return };
    for (item, v) in items.zip(array.iter_mut()) {
        walk_value(&item, v);
    }
}

/// A key as serde reads it (plain or quoted scalar text); None for keys
/// that are collections or carry properties.
fn key_text(key: &SyntaxNode) -> Option<String> {
    let scalar = key.children().find(|n| matches!(n.kind(), FLOW | BLOCK))?;
    if scalar.children().next().is_some() {
        return None;
    }
    match yaml_serde::from_str::<yaml_serde::Value>(&scalar.text().to_string()).ok()? {
        yaml_serde::Value::String(s) => Some(s),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Value {
        let mut v = serde_json::to_value(yaml_serde::from_str::<yaml_serde::Value>(text).unwrap()).unwrap();
        patch(text, &mut v);
        v
    }

    #[test]
    fn every_yaml_1_1_boolean_spelling_reads_as_go_yaml_reads_it() {
        for t in ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"] {
            assert_eq!(boolean(t), Some(true), "{t}");
        }
        for f in ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"] {
            assert_eq!(boolean(f), Some(false), "{f}");
        }
        for s in ["yES", "oN", "enabled", "1", ""] {
            assert_eq!(boolean(s), None, "{s}");
        }
    }

    #[test]
    fn integers_take_go_prefixes_underscores_and_leading_zero_octal() {
        assert_eq!(integer("0777"), Some(511));
        assert_eq!(integer("1_000"), Some(1000));
        assert_eq!(integer("0x1F"), Some(31));
        assert_eq!(integer("-0b101"), Some(-5));
        assert_eq!(integer("0"), Some(0));
        assert_eq!(integer("089"), None);
        assert_eq!(integer("web"), None);
    }

    #[test]
    fn plain_scalars_are_read_as_yaml_1_1_and_quoted_ones_stay_strings() {
        let v = read(
            "spec:\n  hostNetwork: yes\n  quoted: 'yes'\n  flow: {a: on, b: \"off\", c: [n, 'y', 0777]}\n  list:\n  - Off\n  - - y\n  mode: 0644\n",
        );
        assert_eq!(
            v,
            json!({"spec": {"hostNetwork": true, "quoted": "yes",
                "flow": {"a": true, "b": "off", "c": [false, "y", 511]}, "list": [false, [true]], "mode": 420}})
        );
    }

    #[test]
    fn a_document_with_nothing_yaml_1_1_reads_otherwise_is_not_walked() {
        let v = json!({"a": "web", "b": [true, 1.5, {"c": "x", "port": 8080}]});
        assert!(!suspicious(&v));
        assert!(suspicious(&json!({"a": ["on"]})));
        assert!(!octal_like("port: 8080\nimage: app:1.0\nv: 1.05\n"));
        assert!(octal_like("mode: 0644\n"));
        assert_eq!(read("a: !!str yes\nb: yes\n  no\n"), json!({"a": "yes", "b": "yes no"}));
    }

    #[test]
    fn a_boolean_field_reads_a_plain_spelling_that_reached_us_as_a_string() {
        assert_eq!(as_bool(Some(&json!("yes"))), Some(true));
        assert_eq!(as_bool(Some(&json!("off"))), Some(false));
        assert_eq!(as_bool(Some(&json!(true))), Some(true));
        assert_eq!(as_bool(Some(&json!("maybe"))), None);
        assert_eq!(as_bool(None), None);
    }
}
