//! What `-f` reads, the way kubectl reads it (k8s.io/cli-runtime's file
//! visitor and apimachinery's `YAMLOrJSONDecoder`, v0.34):
//!
//! - `-f -` (standard input), `-f FILE`, or `-f DIR`: the files of DIR
//!   ending in `.json`, `.yaml` or `.yml`, in name order, and with `-R`
//!   those of its subdirectories too ([`read_path`]).
//! - A byte order mark (UTF-8, or UTF-16 as Windows PowerShell writes) is
//!   taken off before reading and put back on output ([`Source`]).
//! - A text whose first non-space character is `{` is read as JSON
//!   objects back to back; after at most one object, text that is not JSON
//!   switches the rest to YAML (kubectl's rule); otherwise it is YAML
//!   documents split at `---` lines, where a `---` line with anything but a
//!   comment after it is an error, as in kubectl ([`split`]).
//!
//! Every step is linear in the input: the splitting is one pass, JSON
//! values are read by one streaming reader, and a YAML document is handed
//! to the parser only when its flow nesting (`[` and `{`) is at most
//! [`MAX_DEPTH`], since the parser's cost grows with the nesting depth
//! times the length.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{template_syntax, yaml11};
use crate::Error;

/// Deepest nesting read: serde's YAML reader refuses more anyway, and
/// checking first keeps the parser linear (no manifest comes near it).
pub const MAX_DEPTH: usize = 128;

/// The file extensions kubectl reads in a directory.
pub const EXTENSIONS: [&str; 3] = ["json", "yaml", "yml"];

/// How a source's bytes encode its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    Utf8,
    /// UTF-16, little endian, byte order mark first.
    Utf16Le,
    /// UTF-16, big endian, byte order mark first.
    Utf16Be,
}

/// One input: a file or standard input, decoded.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file, or None for standard input and text given directly.
    pub path: Option<PathBuf>,
    /// How it was encoded.
    pub encoding: Encoding,
    /// Whether it started with a byte order mark.
    pub bom: bool,
    /// The text, without the byte order mark.
    pub text: String,
}

impl Source {
    /// Text given directly (tests, the library): a UTF-8 byte order mark
    /// is taken off and remembered.
    pub fn from_text(text: &str) -> Source {
        let (bom, text) = match text.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        Source { path: None, encoding: Encoding::Utf8, bom, text: text.to_owned() }
    }

    /// Decodes a file's bytes (`path` only names it in messages).
    pub fn decode(path: Option<PathBuf>, bytes: Vec<u8>) -> Result<Source, Error> {
        let name = || path.as_ref().map_or("standard input".into(), |p| p.display().to_string());
        let utf16 = |le: bool| {
            let units: Vec<u16> = bytes[2..]
                .chunks(2)
                .map(|c| {
                    if le {
                        u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])
                    } else {
                        u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])
                    }
                })
                .collect();
            String::from_utf16(&units)
                .map_err(|e| Error::Usage(format!("{} is not valid UTF-16: {e}", name())))
        };
        let (encoding, text) = match bytes.get(..2) {
            Some([0xff, 0xfe]) => (Encoding::Utf16Le, utf16(true)?),
            Some([0xfe, 0xff]) => (Encoding::Utf16Be, utf16(false)?),
            _ => {
                let text = String::from_utf8(bytes)
                    .map_err(|e| Error::Usage(format!("{} is not UTF-8 or UTF-16 text: {e}", name())))?;
                let mut s = Source::from_text(&text);
                s.path = path;
                return Ok(s);
            }
        };
        Ok(Source { path, encoding, bom: true, text })
    }

    /// The name in messages: the file, or nothing for standard input.
    pub fn label(&self) -> Option<String> {
        self.path.as_ref().map(|p| p.display().to_string())
    }

    /// `text` (output for this source, without a byte order mark) in this
    /// source's encoding, its byte order mark first if it had one.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        let bom = if self.bom { "\u{feff}" } else { "" };
        let full = format!("{bom}{text}");
        match self.encoding {
            Encoding::Utf8 => full.into_bytes(),
            Encoding::Utf16Le => full.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Encoding::Utf16Be => full.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        }
    }
}

/// The sources `-f PATH` names: standard input for `-`, the file, or the
/// files of a directory with kubectl's extensions (and its subdirectories'
/// with `recursive`), in name order.
pub fn read_path(path: &Path, recursive: bool) -> Result<Vec<Source>, Error> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
        return Ok(vec![Source::decode(None, bytes)?]);
    }
    let cannot = |p: &Path, e: std::io::Error| Error::Usage(format!("cannot read {}: {e}", p.display()));
    if !path.is_dir() {
        let bytes = std::fs::read(path).map_err(|e| cannot(path, e))?;
        return Ok(vec![Source::decode(Some(path.to_owned()), bytes)?]);
    }
    let mut files = Vec::new();
    collect(path, recursive, &mut files).map_err(|e| cannot(path, e))?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "{} holds no file ending in .json, .yaml or .yml{}: nothing to read",
            path.display(),
            if recursive { "" } else { " (pass -R to read its subdirectories)" }
        )));
    }
    files
        .into_iter()
        .map(|f| Source::decode(Some(f.clone()), std::fs::read(&f).map_err(|e| cannot(&f, e))?))
        .collect()
}

/// kubectl walks a directory in lexical order (Go's filepath.Walk).
fn collect(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect(&entry, recursive, out)?;
            }
        } else if entry.extension().is_some_and(|e| EXTENSIONS.iter().any(|x| e == *x)) {
            out.push(entry);
        }
    }
    Ok(())
}

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// One JSON value of a JSON stream.
    Json,
    /// One YAML document.
    Yaml,
}

/// One document of a source: its exact text (the documents' texts put
/// together give the source back), how it is written and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    /// The text, with the `---` line before it (YAML) or the space before it (JSON).
    pub text: &'a str,
    /// JSON or YAML.
    pub syntax: Syntax,
    /// The line its text starts on (1-based).
    pub line: usize,
    /// A JSON document's value, read while splitting.
    pub json: Option<Value>,
}

/// A source's text that cannot be split into documents, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    /// The line (1-based).
    pub line: usize,
    /// Why, and what to do.
    pub why: String,
}

fn lines_in(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Splits a source's text into its documents, as kubectl does.
pub fn split(text: &str) -> Result<Vec<Document<'_>>, SplitError> {
    let mut docs: Vec<Document<'_>> = Vec::new();
    let mut rest = 0;
    if text.trim_start().starts_with('{') {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let (mut line, mut end) = (1, 0);
        loop {
            match stream.next() {
                Some(Ok(value)) => {
                    let piece = &text[end..stream.byte_offset()];
                    // Named by the line its object starts on, after the space before it.
                    let at = line + lines_in(&piece[..piece.len() - piece.trim_start().len()]);
                    docs.push(Document { text: piece, syntax: Syntax::Json, line: at, json: Some(value) });
                    line += lines_in(piece);
                    end = stream.byte_offset();
                }
                None => {
                    // Only space after the last value: it goes with it.
                    if let Some(last) = docs.last_mut() {
                        last.text = &text[end - last.text.len()..];
                    }
                    return Ok(docs);
                }
                Some(Err(e)) if docs.len() > 1 => {
                    return Err(SplitError {
                        line,
                        why: format!(
                            "after {} JSON objects the text is not JSON ({e}); kubectl reads such a stream as \
                             JSON to its end: write JSON only, or YAML documents separated by --- lines",
                            docs.len()
                        ),
                    });
                }
                Some(Err(_)) => {
                    // kubectl goes on in YAML after the spaces up to and
                    // including the first line break (from the start when
                    // not even the first object is JSON).
                    if let Some(last) = docs.last_mut() {
                        let mut skip = 0;
                        for c in text[end..].chars() {
                            if c == '\n' {
                                skip += 1;
                                break;
                            }
                            if !c.is_whitespace() {
                                break;
                            }
                            skip += c.len_utf8();
                        }
                        rest = end + skip;
                        last.text = &text[end - last.text.len()..rest];
                    }
                    break;
                }
            }
        }
    }
    let first_line = 1 + lines_in(&text[..rest]);
    docs.extend(split_yaml(&text[rest..], first_line)?);
    Ok(docs)
}

/// YAML documents at `---` lines (kubectl's YAMLReader): a line starting
/// with `---` is a separator when only spaces or a comment follow, and an
/// error otherwise; the separator line goes with the document after it.
fn split_yaml(text: &str, first_line: usize) -> Result<Vec<Document<'_>>, SplitError> {
    let mut docs = Vec::new();
    let (mut start, mut offset, mut start_line) = (0, 0, first_line);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(after) = line.strip_prefix("---") {
            let after = after.trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(SplitError {
                    line: first_line + n,
                    why: format!(
                        "`---` is followed by {after:?} on its line, which kubectl refuses (\"invalid Yaml \
                         document separator\"): put the document on the next line"
                    ),
                });
            }
            if offset > start {
                docs.push(Document {
                    text: &text[start..offset],
                    syntax: Syntax::Yaml,
                    line: start_line,
                    json: None,
                });
                start = offset;
                start_line = first_line + n;
            }
        }
        offset += line.len();
    }
    if start < text.len() {
        docs.push(Document { text: &text[start..], syntax: Syntax::Yaml, line: start_line, json: None });
    }
    Ok(docs)
}

/// The deepest flow nesting (`[`, `{`) of a YAML text, outside quoted
/// scalars and comments; one pass. Brackets inside plain scalars of block
/// context are not nesting (`a[0]`), so only those where a value begins count.
pub fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut quote, mut at_value) = (0usize, 0usize, None, true);
    let mut prev = b'\n';
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q == b'"' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'#' if prev.is_ascii_whitespace() => {
                    i = text[i..].find('\n').map_or(b.len(), |e| i + e);
                    continue;
                }
                b'[' | b'{' if at_value || depth > 0 => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' if depth > 0 => depth -= 1,
                b'"' | b'\'' if at_value => quote = Some(c),
                _ => {}
            },
        }
        at_value = match c {
            b' ' | b'\t' => at_value,
            b'\n' | b'-' | b'?' | b':' | b',' | b'[' | b'{' => true,
            _ => false,
        };
        prev = c;
        i += 1;
    }
    deepest
}

/// A YAML document's value as kubectl reads it: serde's reading with
/// YAML 1.1's booleans and integers ([`yaml11`]), and the pod template's
/// `metadata:` or `annotations:` without a value read as empty, as
/// kubectl's typed decoding does.
pub fn read_yaml(text: &str) -> Result<Value, String> {
    let depth = flow_depth(text);
    if depth > MAX_DEPTH {
        return Err(format!(
            "it nests [ and {{ {depth} levels deep, more than the {MAX_DEPTH} kubectl-bpc reads (no manifest comes near)"
        ));
    }
    let parsed: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        let hint = if template_syntax::mentions(text) {
            format!(" (it holds template syntax: if it is a template, {})", template_syntax::RENDER_FIRST)
        } else {
            String::new()
        };
        if e.to_string().contains("more than one document") {
            // kubectl reads the first and drops the others without a word.
            return "it holds more than one YAML document without a --- line between them (kubectl would read \
                    the first only): put each on its own, after a --- line"
                .to_owned();
        }
        format!("it is not valid YAML: {e}{hint}")
    })?;
    let mut value = serde_json::to_value(&parsed).map_err(|e| format!("it cannot be read as JSON: {e}"))?;
    yaml11::patch(text, &mut value);
    empty_template_maps(&mut value);
    Ok(value)
}

/// `spec.template.metadata` and its `annotations` written with no value
/// (null) read as empty maps, in a workload and in each List item.
pub fn empty_template_maps(value: &mut Value) {
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(empty_template_maps);
    }
    for pointer in ["/spec/template/metadata", "/spec/template/metadata/annotations"] {
        if let Some(v) = value.pointer_mut(pointer)
            && v.is_null()
        {
            *v = Value::Object(serde_json::Map::new());
        }
    }
}

/// Why a document is not an object kubectl reads (it refuses these too):
/// None for an object with a kind (and every List item with one).
pub fn not_an_object(value: &Value) -> Option<String> {
    let what = match value {
        Value::Object(m) => {
            if !m.get("kind").is_some_and(Value::is_string) {
                return Some("it has no kind, so it is not a Kubernetes object (kubectl refuses it too: \"Object 'Kind' is missing\"): remove it from the input".into());
            }
            let items = m.get("items").and_then(Value::as_array).into_iter().flatten();
            return items
                .enumerate()
                .find_map(|(i, item)| not_an_object(item).map(|why| format!("List item {}: {why}", i + 1)));
        }
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => return None,
    };
    Some(format!("it is {what}, not a Kubernetes object (kubectl refuses it too): remove it from the input"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(&str, Syntax, usize)> {
        split(text).unwrap().into_iter().map(|d| (d.text, d.syntax, d.line)).collect()
    }

    #[test]
    fn yaml_splits_at_kubectls_separator_lines_and_the_pieces_give_the_text_back() {
        let text = "a: 1\n---\nb: 2\n--- # c\nc: '---'\n";
        assert_eq!(
            texts(text),
            [
                ("a: 1\n", Syntax::Yaml, 1),
                ("---\nb: 2\n", Syntax::Yaml, 2),
                ("--- # c\nc: '---'\n", Syntax::Yaml, 4)
            ]
        );
        assert!(split("").unwrap().is_empty());
        // kubectl refuses content after the marker, `---x` included.
        for bad in ["a: 1\n--- b: 2\n", "---x: 1\n"] {
            assert!(split(bad).unwrap_err().why.contains("invalid Yaml document separator"), "{bad}");
        }
    }

    #[test]
    fn json_objects_back_to_back_are_documents_and_one_object_then_yaml_switches_to_yaml() {
        let stream = " {\"kind\":\"A\"}\n{\"kind\":\"B\"}{\"kind\":\"C\"}\n\n";
        let docs = texts(stream);
        assert_eq!(docs.iter().map(|d| d.0).collect::<String>(), stream);
        assert_eq!(
            docs.iter().map(|d| (d.1, d.2)).collect::<Vec<_>>(),
            [(Syntax::Json, 1), (Syntax::Json, 2), (Syntax::Json, 2)]
        );
        let mixed = "{\"kind\":\"A\"}  \n---\nkind: B\n";
        assert_eq!(
            texts(mixed),
            [("{\"kind\":\"A\"}  \n", Syntax::Json, 1), ("---\nkind: B\n", Syntax::Yaml, 2)]
        );
        // Not JSON from the first object on: all YAML (a flow mapping).
        assert_eq!(texts("{kind: A}\n"), [("{kind: A}\n", Syntax::Yaml, 1)]);
        let e = split("{\"kind\":\"A\"}{\"kind\":\"B\"}\n---\nkind: C\n").unwrap_err();
        assert!(e.why.starts_with("after 2 JSON objects"), "{e:?}");
    }

    #[test]
    fn byte_order_marks_and_utf16_come_back_in_their_own_encoding() {
        for bytes in [
            b"\xef\xbb\xbfa: 1\n".to_vec(),
            [&[0xff, 0xfe][..], &"a: 1\n".encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<_>>()]
                .concat(),
            [&[0xfe, 0xff][..], &"a: 1\n".encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<_>>()]
                .concat(),
            b"a: 1\n".to_vec(),
        ] {
            let s = Source::decode(None, bytes.clone()).unwrap();
            assert_eq!(s.text, "a: 1\n");
            assert_eq!(s.encode(&s.text), bytes);
        }
        assert!(
            Source::decode(None, b"\xff\xff\xff".to_vec()).unwrap_err().to_string().contains("not UTF-8")
        );
    }

    #[test]
    fn flow_depth_counts_brackets_where_values_begin_and_not_in_strings_comments_or_plain_text() {
        assert_eq!(flow_depth("a: [[1], {b: [2]}]\n"), 3);
        assert_eq!(flow_depth("a: '[[[['\nb: \"{{{\"\n# [[[[\nc: x[0] y{1}\n"), 0);
        assert_eq!(flow_depth("- [a, [b]]\n- {\"c\": [1]}\n"), 2);
        assert_eq!(flow_depth(&format!("{}{}", "[".repeat(300), "]".repeat(300))), 300);
    }
}
