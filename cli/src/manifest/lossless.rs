//! In-place edits of a YAML document's text: the changes [`super::diff`]
//! found are spliced into the source at byte ranges located with a lossless
//! concrete syntax tree (the `yaml_parser` crate), so every byte outside
//! what is added or removed stays as it was. What is added is written in the
//! document's own style: its line endings, its mapping indent, its list
//! indentation (`- ` under the key or indented) and the spaces after `-`.
//!
//! An addition goes on the lines after the last entry of its mapping or list
//! and a removal takes out the whole lines of an entry, from its first line
//! to the end of the line of its last value; so removing what was added
//! gives back the original bytes. The result is read back with serde and
//! compared with the object the edit asked for; any difference, or any
//! shape this editor does not handle (flow style, anchors and aliases, tags,
//! a byte order mark), is an error naming the reason, and the caller falls
//! back to re-emitting the document.

use serde_json::Value;
use yaml_parser::SyntaxKind::{self, *};
use yaml_parser::SyntaxNode;

use super::diff::{Change, Path, Seg, diff};

/// `source` edited from `old` into `new` in place, or why that cannot be
/// done. `templates` are the pod templates the edit touched: one with YAML
/// anchors or aliases is refused, since an alias would carry the edit to
/// another place (or bring another place's text into this one).
pub fn edit(source: &str, old: &Value, new: &Value, templates: &[Path]) -> Result<String, String> {
    let changes = diff(old, new)?;
    if changes.is_empty() {
        return Ok(source.to_owned());
    }
    if source.starts_with('\u{feff}') {
        return Err("it starts with a byte order mark".into());
    }
    let tree =
        yaml_parser::parse(source).map_err(|e| format!("the lossless YAML parser cannot read it ({e})"))?;
    let documents: Vec<SyntaxNode> = tree.children().filter(|n| n.kind() == DOCUMENT).collect();
    let [document] = documents.as_slice() else {
        return Err(format!("the lossless YAML parser sees {} documents in it", documents.len()));
    };
    let doc = Doc { text: source, style: Style::detect(source, &tree) };
    let root = value_of(document, &Path::default())?;
    for template in templates {
        let node = doc.find(&root, template)?;
        if node.node.descendants().any(|n| matches!(n.kind(), ANCHOR_PROPERTY | ALIAS)) {
            return Err(format!("{template} uses YAML anchors or aliases"));
        }
    }
    let mut splices = Vec::new();
    for change in &changes {
        splices.push(doc.plan(&root, change)?);
    }
    // Stable: additions at the same place stay in the order of the changes.
    splices.sort_by_key(|s| (s.start, s.end));
    let splices = doc.merge_removals(splices);
    let mut out = String::with_capacity(source.len() + splices.iter().map(|s| s.text.len()).sum::<usize>());
    let mut at = 0;
    for s in &splices {
        if s.start < at {
            return Err("two of the changes overlap in the text".into());
        }
        out.push_str(&source[at..s.start]);
        out.push_str(&s.text);
        at = s.end;
    }
    out.push_str(&source[at..]);
    // Read back as the input was read (YAML 1.1 scalars, empty template maps).
    let back =
        super::input::read_yaml(&out).map_err(|e| format!("the edited text cannot be read back: {e}"))?;
    if back != *new {
        return Err("the edited text does not read back as the edited object".into());
    }
    Ok(out)
}

/// Replace `start..end` of the source with `text`.
#[derive(Debug)]
struct Splice {
    start: usize,
    end: usize,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Map,
    Seq,
    FlowMap,
    FlowSeq,
    Scalar,
    /// A key with no value at all (`metadata:`), which reads as null or,
    /// in a pod template, as an empty map; the node is the map entry.
    Empty,
}

/// A value in the tree: for collections the BLOCK_MAP / BLOCK_SEQ /
/// FLOW_MAP / FLOW_SEQ node, for scalars the FLOW or BLOCK node around it.
#[derive(Debug, Clone)]
struct Val {
    shape: Shape,
    node: SyntaxNode,
}

/// The value held by `parent` (a DOCUMENT, BLOCK_MAP_VALUE or BLOCK_SEQ_ENTRY).
fn value_of(parent: &SyntaxNode, at: &Path) -> Result<Val, String> {
    let wrapper = parent
        .children()
        .find(|n| matches!(n.kind(), BLOCK | FLOW))
        .ok_or_else(|| format!("{at} has no value"))?;
    if wrapper.children().any(|n| n.kind() == PROPERTIES) {
        return Err(format!("{at} carries a YAML anchor or tag"));
    }
    let inner = wrapper.children().next();
    let shape = match inner.as_ref().map(SyntaxNode::kind) {
        Some(BLOCK_MAP) => Shape::Map,
        Some(BLOCK_SEQ) => Shape::Seq,
        Some(FLOW_MAP) => Shape::FlowMap,
        Some(FLOW_SEQ) => Shape::FlowSeq,
        Some(ALIAS) => return Err(format!("{at} is a YAML alias")),
        _ => Shape::Scalar,
    };
    let node = match shape {
        Shape::Scalar | Shape::Empty => wrapper,
        _ => inner.expect("matched above"),
    };
    Ok(Val { shape, node })
}

/// The key of a BLOCK_MAP_ENTRY, as serde reads it.
/// Item `index` of the block sequence `seq` (at `at`, for the error).
fn item_of(seq: &Val, index: usize, at: &Path) -> Result<SyntaxNode, String> {
    seq.node
        .children()
        .filter(|n| n.kind() == BLOCK_SEQ_ENTRY)
        .nth(index)
        .ok_or_else(|| format!("{at} has no item {index} in the text"))
}

fn key_of(entry: &SyntaxNode) -> Option<String> {
    let key = entry.children().find(|n| n.kind() == BLOCK_MAP_KEY)?;
    let scalar = key.children().find(|n| matches!(n.kind(), FLOW | BLOCK))?;
    if scalar.children().next().is_some() {
        return None; // properties or a collection as key
    }
    match yaml_serde::from_str::<yaml_serde::Value>(&scalar.text().to_string()).ok()? {
        yaml_serde::Value::String(s) => Some(s),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_trivia(kind: SyntaxKind) -> bool {
    matches!(kind, WHITESPACE | COMMENT)
}

/// Byte range from the first to the last token of `node` that is not
/// whitespace or a comment.
fn content(node: &SyntaxNode) -> (usize, usize) {
    let mut tokens =
        node.descendants_with_tokens().filter_map(|e| e.into_token()).filter(|t| !is_trivia(t.kind()));
    let first = tokens.next();
    let last = tokens.last().or_else(|| first.clone());
    match (first, last) {
        (Some(f), Some(l)) => (f.text_range().start().into(), l.text_range().end().into()),
        _ => {
            let r = node.text_range();
            (r.start().into(), r.end().into())
        }
    }
}

fn start(node: &SyntaxNode) -> usize {
    node.text_range().start().into()
}

struct Doc<'a> {
    text: &'a str,
    style: Style,
}

impl Doc<'_> {
    fn line_start(&self, offset: usize) -> usize {
        self.text[..offset].rfind('\n').map_or(0, |i| i + 1)
    }

    fn column(&self, offset: usize) -> usize {
        self.text[self.line_start(offset)..offset].chars().count()
    }

    /// Just after the line break ending the line `offset` is on (or the end).
    fn next_line(&self, offset: usize) -> usize {
        self.text[offset..].find('\n').map_or(self.text.len(), |i| offset + i + 1)
    }

    fn find(&self, root: &Val, path: &Path) -> Result<Val, String> {
        let mut here = root.clone();
        let mut at = Path::default();
        for seg in &path.0 {
            match (seg, here.shape) {
                (Seg::Key(k), Shape::Map) => {
                    let entry =
                        self.entry(&here, k).ok_or_else(|| format!("{at} has no key {k} in the text"))?;
                    at = at.child(seg.clone());
                    let value = entry.children().find(|n| n.kind() == BLOCK_MAP_VALUE);
                    let written = value
                        .as_ref()
                        .is_some_and(|v| v.children().any(|n| matches!(n.kind(), BLOCK | FLOW)));
                    here = match value {
                        Some(value) if written => value_of(&value, &at)?,
                        _ => Val { shape: Shape::Empty, node: entry },
                    };
                }
                (Seg::Index(i), Shape::Seq) => {
                    let entry = item_of(&here, *i, &at)?;
                    at = at.child(seg.clone());
                    here = value_of(&entry, &at)?;
                }
                (_, shape) => return Err(not_block(&at, shape)),
            }
        }
        Ok(here)
    }

    fn entry(&self, map: &Val, key: &str) -> Option<SyntaxNode> {
        map.node
            .children()
            .filter(|n| n.kind() == BLOCK_MAP_ENTRY)
            .find(|e| key_of(e).as_deref() == Some(key))
    }

    /// The block list at `seq` and its first item, whose indentation new
    /// items take.
    fn first_item(&self, root: &Val, seq: &Path) -> Result<(Val, SyntaxNode), String> {
        let s = self.find(root, seq)?;
        if s.shape != Shape::Seq {
            return Err(not_block(seq, s.shape));
        }
        let first = s.node.children().find(|n| n.kind() == BLOCK_SEQ_ENTRY).ok_or("an empty list")?;
        Ok((s, first))
    }

    /// `items` as list items, indented as `first` is.
    fn items_like(&self, first: &SyntaxNode, items: &[Value]) -> Result<String, String> {
        let dash = self.column(start(first));
        let pad = self.pad(first).unwrap_or(self.style.pad);
        let mut text = String::new();
        for item in items {
            self.style.item(&mut text, item, dash, pad)?;
        }
        Ok(text)
    }

    fn plan(&self, root: &Val, change: &Change) -> Result<Splice, String> {
        match change {
            Change::AddKey { map, key, value } => {
                let m = self.find(root, map)?;
                if m.shape == Shape::Empty {
                    // The first entry of a map written as a bare `key:`.
                    let mut text = String::new();
                    self.style.entry(&mut text, key, value, self.column(start(&m.node)) + self.style.step)?;
                    return Ok(self.insert_after(&m.node, text));
                }
                if m.shape != Shape::Map {
                    return Err(not_block(map, m.shape));
                }
                let first =
                    m.node.children().find(|n| n.kind() == BLOCK_MAP_ENTRY).ok_or("an empty mapping")?;
                let mut text = String::new();
                self.style.entry(&mut text, key, value, self.column(start(&first)))?;
                Ok(self.insert_after(&m.node, text))
            }
            Change::Append { seq, items } => {
                let (s, first) = self.first_item(root, seq)?;
                let text = self.items_like(&first, items)?;
                Ok(self.insert_after(&s.node, text))
            }
            Change::Prepend { seq, items } => {
                let (_, first) = self.first_item(root, seq)?;
                let line = self.line_start(start(&first));
                if !self.text[line..start(&first)].chars().all(|c| c == ' ') {
                    return Err(format!("{seq} starts on a line shared with other YAML"));
                }
                let text = self.items_like(&first, items)?;
                Ok(Splice { start: line, end: line, text })
            }
            Change::RemoveKey { map, key } => {
                let m = self.find(root, map)?;
                if m.shape != Shape::Map {
                    return Err(not_block(map, m.shape));
                }
                let entry =
                    self.entry(&m, key).ok_or_else(|| format!("{map} has no key {key} in the text"))?;
                self.remove_lines(&entry, &map.child(Seg::Key(key.clone())))
            }
            Change::RemoveItem { seq, index } => {
                let s = self.find(root, seq)?;
                if s.shape != Shape::Seq {
                    return Err(not_block(seq, s.shape));
                }
                let entry = item_of(&s, *index, seq)?;
                self.remove_lines(&entry, &seq.child(Seg::Index(*index)))
            }
            Change::Replace { at, value } => {
                let v = self.find(root, at)?;
                let (from, to) = content(&v.node);
                let text = match (value, v.shape) {
                    (Value::Object(m), Shape::Map) if !m.is_empty() => {
                        let col = self.column(from);
                        let mut text = String::new();
                        for (k, item) in m {
                            self.style.entry(&mut text, k, item, col)?;
                        }
                        text
                    }
                    (Value::Array(a), Shape::Seq) if !a.is_empty() => {
                        let col = self.column(from);
                        let first = v.node.children().find(|n| n.kind() == BLOCK_SEQ_ENTRY);
                        let pad = first.and_then(|f| self.pad(&f)).unwrap_or(self.style.pad);
                        let mut text = String::new();
                        for item in a {
                            self.style.item(&mut text, item, col, pad)?;
                        }
                        text
                    }
                    (Value::Object(m), _) if !m.is_empty() => {
                        return Err(format!("{at} would become a mapping"));
                    }
                    (Value::Array(a), _) if !a.is_empty() => return Err(format!("{at} would become a list")),
                    (scalar, _) => scalar_text(scalar)?,
                };
                // The first line goes where the old value started; the last
                // line break is the old one's.
                let col = self.column(from);
                let text = text.strip_suffix(self.style.nl).unwrap_or(&text);
                let text = text.get(col..).filter(|_| text.starts_with(&" ".repeat(col))).unwrap_or(text);
                Ok(Splice { start: from, end: to, text: text.to_owned() })
            }
        }
    }

    /// Spaces after the `-` of a list entry whose value is on the same line.
    fn pad(&self, entry: &SyntaxNode) -> Option<usize> {
        let ws = entry.children_with_tokens().nth(1)?.into_token()?;
        (ws.kind() == WHITESPACE && !ws.text().contains('\n')).then(|| ws.text().len())
    }

    /// Lines of `text` put after the line on which `node`'s last value ends.
    fn insert_after(&self, node: &SyntaxNode, text: String) -> Splice {
        let (_, end) = content(node);
        let at = self.next_line(end);
        if at == self.text.len() && !self.text.ends_with('\n') {
            // The last line has no line break: the addition brings one
            // before it and leaves its own last line without one.
            let body = text.strip_suffix(self.style.nl).unwrap_or(&text);
            return Splice { start: at, end: at, text: format!("{}{body}", self.style.nl) };
        }
        Splice { start: at, end: at, text }
    }

    /// The whole lines of a map or list entry: from the start of its first
    /// line to the line break after its last value (what
    /// [`Doc::insert_after`] adds, exactly).
    fn remove_lines(&self, entry: &SyntaxNode, at: &Path) -> Result<Splice, String> {
        let first = start(entry);
        let line = self.line_start(first);
        if !self.text[line..first].chars().all(|c| c == ' ') {
            return Err(format!("{at} starts on a line shared with other YAML"));
        }
        let (_, end) = content(entry);
        Ok(Splice { start: line, end: self.next_line(end), text: String::new() })
    }

    /// Joins removals that touch; one that reaches the end of a text
    /// without a final line break takes the line break before it instead
    /// (the one [`Doc::insert_after`] added).
    fn merge_removals(&self, splices: Vec<Splice>) -> Vec<Splice> {
        let mut out: Vec<Splice> = Vec::with_capacity(splices.len());
        for s in splices {
            match out.last_mut() {
                Some(last) if last.text.is_empty() && s.text.is_empty() && s.start <= last.end => {
                    last.end = last.end.max(s.end);
                }
                _ => out.push(s),
            }
        }
        for s in &mut out {
            if s.text.is_empty() && s.end == self.text.len() && !self.text.ends_with('\n') && s.start > 0 {
                s.start -= if self.text[..s.start].ends_with("\r\n") { 2 } else { 1 };
            }
        }
        out
    }
}

fn not_block(at: &Path, shape: Shape) -> String {
    match shape {
        Shape::FlowMap => format!("{at} is a flow-style mapping ({{...}})"),
        Shape::FlowSeq => format!("{at} is a flow-style list ([...])"),
        Shape::Scalar | Shape::Empty => format!("{at} is not a mapping or list in the text"),
        Shape::Map => format!("{at} is a mapping, not a list"),
        Shape::Seq => format!("{at} is a list, not a mapping"),
    }
}

/// A scalar (or empty collection) as YAML on one line: serde's own
/// rendering (plain where that reads back the same, quoted otherwise), or a
/// JSON string, which is valid YAML too, where serde would use a block or
/// where serde's plain string is a boolean or number to kubectl (`yes`,
/// `on`, `1_000`: serde writes YAML 1.2, kubectl reads YAML 1.1).
fn scalar_text(value: &Value) -> Result<String, String> {
    let text = yaml_serde::to_string(value).map_err(|e| e.to_string())?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let read_otherwise = value.as_str().is_some_and(|s| text == s && super::yaml11::plain(s).is_some());
    if text.contains('\n') || read_otherwise {
        return serde_json::to_string(value).map_err(|e| e.to_string());
    }
    Ok(text.to_owned())
}

/// A whole document (a mapping) as block YAML, for a document that cannot
/// be edited in place: every string written so that kubectl reads it back
/// as a string (see [`scalar_text`]).
pub fn emit(value: &Value) -> Result<String, String> {
    let style = Style { nl: "\n", step: 2, seq_indent: 0, pad: 1 };
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                style.entry(&mut out, k, v, 0)?;
            }
        }
        other => {
            out.push_str(&scalar_text(other)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// How a document writes block YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Style {
    /// Line break: "\n" or "\r\n".
    nl: &'static str,
    /// Indent of a nested mapping's keys past its parent key.
    step: usize,
    /// Indent of a list's `-` past its parent key (0: `- ` under the key).
    seq_indent: usize,
    /// Spaces after `-`.
    pad: usize,
}

impl Style {
    fn detect(text: &str, tree: &SyntaxNode) -> Style {
        let doc = Doc { text, style: Style { nl: "\n", step: 2, seq_indent: 0, pad: 1 } };
        let (mut steps, mut seq_indents, mut pads) = (Vec::new(), Vec::new(), Vec::new());
        for entry in tree.descendants() {
            match entry.kind() {
                BLOCK_MAP_ENTRY => {
                    let key_col = doc.column(start(&entry));
                    let key_line = doc.line_start(start(&entry));
                    let Some(value) = entry.children().find(|n| n.kind() == BLOCK_MAP_VALUE) else {
                        continue;
                    };
                    let Ok(v) = value_of(&value, &Path::default()) else { continue };
                    let first =
                        v.node.children().find(|n| matches!(n.kind(), BLOCK_MAP_ENTRY | BLOCK_SEQ_ENTRY));
                    let Some(first) = first else { continue };
                    if doc.line_start(start(&first)) == key_line {
                        continue;
                    }
                    let col = doc.column(start(&first));
                    match v.shape {
                        Shape::Map if col > key_col => steps.push(col - key_col),
                        Shape::Seq if col >= key_col => seq_indents.push(col - key_col),
                        _ => {}
                    }
                }
                BLOCK_SEQ_ENTRY => pads.extend(doc.pad(&entry)),
                _ => {}
            }
        }
        Style {
            nl: if text.contains("\r\n") { "\r\n" } else { "\n" },
            step: most_common(&steps).unwrap_or(2),
            seq_indent: most_common(&seq_indents).unwrap_or(0),
            pad: most_common(&pads).unwrap_or(1),
        }
    }

    /// `key: value` at column `col`, nested values below it.
    fn entry(&self, out: &mut String, key: &str, value: &Value, col: usize) -> Result<(), String> {
        out.push_str(&" ".repeat(col));
        out.push_str(&scalar_text(&Value::String(key.to_owned()))?);
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(self.nl);
                for (k, v) in m {
                    self.entry(out, k, v, col + self.step)?;
                }
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str(self.nl);
                for v in a {
                    self.item(out, v, col + self.seq_indent, self.pad)?;
                }
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar)?);
                out.push_str(self.nl);
            }
        }
        Ok(())
    }

    /// `- value` with the `-` at column `dash`.
    fn item(&self, out: &mut String, value: &Value, dash: usize, pad: usize) -> Result<(), String> {
        let inner = dash + 1 + pad;
        let mut body = String::new();
        match value {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    self.entry(&mut body, k, v, inner)?;
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for v in a {
                    self.item(&mut body, v, inner, pad)?;
                }
            }
            scalar => {
                body.push_str(&" ".repeat(inner));
                body.push_str(&scalar_text(scalar)?);
                body.push_str(self.nl);
            }
        }
        out.push_str(&" ".repeat(dash));
        out.push('-');
        out.push_str(&" ".repeat(pad));
        out.push_str(&body[inner..]);
        Ok(())
    }
}

fn most_common(values: &[usize]) -> Option<usize> {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(*v).or_insert(0usize) += 1;
    }
    // Ties go to the first value seen.
    let best = counts.values().copied().max()?;
    values.iter().copied().find(|v| counts[v] == best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Value {
        serde_json::to_value(yaml_serde::from_str::<yaml_serde::Value>(text).unwrap()).unwrap()
    }

    fn edited(text: &str, change: impl FnOnce(&mut Value)) -> Result<String, String> {
        let old = read(text);
        let mut new = old.clone();
        change(&mut new);
        let out = edit(text, &old, &new, &[])?;
        // And back: removing what was added gives the original bytes.
        assert_eq!(edit(&out, &new, &old, &[]).as_deref(), Ok(text), "round trip of\n{out}");
        Ok(out)
    }

    fn add_item(v: &mut Value) {
        v["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "env": [{"name": "X", "value": "1"}]}));
    }

    #[test]
    fn an_item_is_added_in_the_lists_own_indentation() {
        let unindented = "spec:\n  containers:\n  - name: a # first\n  # trailing comment\nother: 1\n";
        assert_eq!(
            edited(unindented, add_item).unwrap(),
            "spec:\n  containers:\n  - name: a # first\n  - name: b\n    env:\n    - name: X\n      value: '1'\n  # trailing comment\nother: 1\n"
        );
        let indented = "spec:\n    containers:\n        -   name: a\n";
        assert_eq!(
            edited(indented, add_item).unwrap(),
            "spec:\n    containers:\n        -   name: a\n        -   name: b\n            env:\n                -   name: X\n                    value: '1'\n"
        );
    }

    #[test]
    fn a_key_is_added_after_the_last_entry_with_crlf_and_without_a_final_line_break() {
        let text = "metadata:\r\n  labels:\r\n    app: x\r\nspec: {}";
        let out = edited(text, |v| v["metadata"]["annotations"] = json!({"a/b": "{\"k\":1}"})).unwrap();
        assert_eq!(
            out,
            "metadata:\r\n  labels:\r\n    app: x\r\n  annotations:\r\n    a/b: '{\"k\":1}'\r\nspec: {}"
        );
        let out = edited("a: 1", |v| v["b"] = json!({"c": [1]})).unwrap();
        assert_eq!(out, "a: 1\nb:\n  c:\n  - 1");
    }

    #[test]
    fn replacements_keep_the_surrounding_text() {
        let text = "c:\n- name: a\n  env:\n  - {name: X}   # keep me\n  image: \"old\" # and me\n";
        let old = read(text);
        let mut new = old.clone();
        new["c"][0]["image"] = json!("new:1");
        new["c"][0]["env"] = json!([{"name": "Y"}, {"name": "Z"}]);
        assert_eq!(
            edit(text, &old, &new, &[]).unwrap(),
            "c:\n- name: a\n  env:\n  - name: \"Y\"\n  - name: Z   # keep me\n  image: new:1 # and me\n"
        );
        // `Y` is quoted: kubectl would read a plain Y as true (YAML 1.1).
    }

    #[test]
    fn shapes_it_cannot_edit_are_refused_with_the_reason() {
        let flow = edited("spec: {containers: [{name: a}]}\n", add_item).unwrap_err();
        assert!(flow.contains("spec is a flow-style mapping"), "{flow}");
        let flow_list = edited("spec:\n  containers: [{name: a}]\n", add_item).unwrap_err();
        assert!(flow_list.contains("spec.containers is a flow-style list"), "{flow_list}");
        let alias = edited("x: &c [{name: a}]\nspec:\n  containers: *c\n", add_item).unwrap_err();
        assert!(alias.contains("alias"), "{alias}");
        let text = "spec: &t\n  containers:\n  - name: a\n";
        let old = read(text);
        let mut new = old.clone();
        add_item(&mut new);
        let anchored = edit(text, &old, &new, &[Path(vec![Seg::Key("spec".into())])]).unwrap_err();
        assert!(anchored.contains("anchor"), "{anchored}");
    }

    #[test]
    fn the_style_is_read_from_the_document() {
        let text = "a:\n    b:\n      - x\n      - y\nc:\n    d: 1\n";
        let tree = yaml_parser::parse(text).unwrap();
        assert_eq!(Style::detect(text, &tree), Style { nl: "\n", step: 4, seq_indent: 2, pad: 1 });
    }
}
