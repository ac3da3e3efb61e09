//! Templates (Helm charts, Jinja) are not manifests: kubectl cannot read a
//! chart's `templates/deploy.yaml`, and an edit of one would take the
//! workload's name and key from the template's text. They are recognised
//! before anything is decided, two ways:
//!
//! - [`structural`]: `{{` or `{%` where a YAML value or line begins, outside
//!   quoted and block scalars and comments (`{{- if .Values.x }}`,
//!   `image: {{ .Values.image }}`). Such text is not YAML, or is YAML that
//!   means something else (a flow mapping).
//! - [`in_decided_fields`]: `{{` inside a string the decision depends on
//!   (kind, apiVersion, name, namespace, hostNetwork, container names), such
//!   as `name: "{{ .Release.Name }}-web"`.
//!
//! A `{{` inside any other string is data and is kept: Prometheus rules and
//! Alertmanager templates in ConfigMaps are full of them.

use serde_json::Value;

/// Where a template was found, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Line in the document (1-based), when known.
    pub line: Option<usize>,
    /// What is templated: the text, or the field.
    pub what: String,
}

/// What to do about a template, in one place for every message.
pub const RENDER_FIRST: &str = "render it first (helm template RELEASE CHART | kubectl bpc inject -f - ...), \
     or add the sidecar when the chart is installed (helm install --post-renderer, see docs/guide.md)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    Single,
    Double,
    /// Inside a block scalar whose header line was indented this much.
    Block(usize),
}

/// The first template opening in a structural place of `text` (one YAML
/// document), if any. One pass over the text.
pub fn structural(text: &str) -> Option<Found> {
    let mut state = State::Normal;
    // The column of the key (or `-`) whose plain value ran to the end of
    // the line before: lines indented past it continue that plain scalar.
    let mut plain_from: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let State::Block(parent) = state {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            state = State::Normal;
        }
        if state == State::Normal && plain_from.is_some_and(|p| indent > p) && !line.trim().is_empty() {
            continue;
        }
        plain_from = None;
        let b = line.as_bytes();
        // At a place where a YAML value can begin, and where the last scalar began.
        let mut at_value = state == State::Normal;
        let (mut scalar_at, mut key_at, mut dash_at) = (indent, None, None);
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match state {
                State::Single => {
                    if c == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            state = State::Normal;
                        }
                    }
                }
                State::Double => {
                    if c == b'\\' {
                        i += 1;
                    } else if c == b'"' {
                        state = State::Normal;
                    }
                }
                State::Normal | State::Block(_) => {
                    let next = b.get(i + 1).copied();
                    if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
                        break;
                    }
                    if at_value && c == b'{' && matches!(next, Some(b'{' | b'%')) {
                        let end = line[i..]
                            .find("}}")
                            .or_else(|| line[i..].find("%}"))
                            .map_or(line.len(), |e| i + e + 2);
                        return Some(Found { line: Some(n + 1), what: line[i..end].to_owned() });
                    }
                    if c == b'-' && at_value && matches!(next, None | Some(b' ')) {
                        dash_at = Some(i);
                    } else if at_value && !matches!(c, b' ' | b'\t') {
                        scalar_at = i;
                    }
                    if c == b':' && matches!(next, None | Some(b' ' | b'\t')) {
                        key_at = Some(scalar_at);
                    }
                    if at_value && c == b'\'' {
                        state = State::Single;
                    } else if at_value && c == b'"' {
                        state = State::Double;
                    } else if at_value && (c == b'|' || c == b'>') && block_header(&line[i + 1..]) {
                        state = State::Block(indent);
                        break;
                    }
                    at_value = match c {
                        b' ' | b'\t' => at_value,
                        b'-' | b'?' | b',' | b'[' | b'{' => true,
                        b':' => matches!(next, None | Some(b' ' | b'\t')),
                        _ => false,
                    };
                }
            }
            i += 1;
        }
        if state == State::Normal && !at_value {
            plain_from = Some(key_at.or(dash_at).unwrap_or(indent));
        }
    }
    None
}

/// Whether what follows `|` or `>` makes it a block scalar header:
/// indicators, then nothing but a comment.
fn block_header(rest: &str) -> bool {
    let rest = rest.trim_start_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
    let rest = rest.trim_start();
    rest.is_empty() || rest.starts_with('#')
}

/// The strings of an object that decide what is done to it, with their
/// field names: kind, apiVersion, name and namespace, and in its pod
/// template hostNetwork and the containers' names.
fn decided(object: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for field in
        ["/kind", "/apiVersion", "/metadata/name", "/metadata/namespace", "/spec/template/spec/hostNetwork"]
    {
        if let Some(v) = object.pointer(field) {
            out.push((field[1..].replace('/', "."), v));
        }
    }
    for list in ["containers", "initContainers"] {
        let items = object.pointer(&format!("/spec/template/spec/{list}")).and_then(Value::as_array);
        for (i, c) in items.into_iter().flatten().enumerate() {
            if let Some(name) = c.get("name") {
                out.push((format!("spec.template.spec.{list}[{i}].name"), name));
            }
        }
    }
    if let Some(items) = object.get("items").and_then(Value::as_array) {
        for (i, item) in items.iter().enumerate() {
            out.extend(decided(item).into_iter().map(|(f, v)| (format!("items[{i}].{f}"), v)));
        }
    }
    out
}

/// The first decided field of `object` whose string holds template syntax.
pub fn in_decided_fields(object: &Value) -> Option<Found> {
    decided(object).into_iter().find_map(|(field, v)| {
        let s = v.as_str()?;
        (s.contains("{{") || s.contains("{%")).then(|| Found { line: None, what: format!("{field}: {s}") })
    })
}

/// Whether `text` holds `{{` anywhere (outside comments is not checked):
/// a hint for a document that is not valid YAML.
pub fn mentions(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helm_actions_and_unquoted_values_are_found_with_their_line() {
        let chart = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    {{- include \"web.labels\" . | nindent 4 }}\n";
        assert_eq!(
            structural(chart),
            Some(Found { line: Some(6), what: "{{- include \"web.labels\" . | nindent 4 }}".into() })
        );
        assert_eq!(structural("spec:\n  replicas: {{ .Values.replicas }}\n").unwrap().line, Some(2));
        assert_eq!(structural("containers:\n- {{ toYaml .Values.c }}\n").unwrap().line, Some(2));
        assert_eq!(structural("{% if x %}\na: 1\n").unwrap().line, Some(1));
    }

    #[test]
    fn template_text_inside_strings_block_scalars_and_comments_is_data() {
        for text in [
            "summary: Instance {{ $labels.instance }} is down\n",
            "image: \"{{ .Values.image }}\"\nother: '{{ x }}'\n",
            "data:\n  alert.tmpl: |\n    {{ define \"x\" }}\n    {{ end }}\n  next: 1\n",
            "rules:\n- expr: >-\n    {{ x }}\n",
            "# {{ .Values.comment }}\na: 1 # {{ x }}\n",
            "flow: {a: {b: 1}}\njson: {\"a\":{\"b\":{}}}\n",
            "multi: \"first line\n  {{ x }} second\"\n",
            "description: a plain scalar\n  {{ x }} on its second line\nnext: 1\n",
            "- name: a\n  description: wrapped\n    {{ .metadata.name }} text\n",
        ] {
            assert_eq!(structural(text), None, "{text}");
        }
        // A key after a plain value is not a continuation.
        assert_eq!(structural("- name: a\n  image: {{ x }}\n").unwrap().line, Some(2));
        // After a block scalar ends, the scan resumes.
        assert_eq!(structural("a: |\n  {{ x }}\nb: {{ y }}\n").unwrap().line, Some(3));
    }

    #[test]
    fn template_text_in_a_name_or_kind_is_found_and_elsewhere_is_not() {
        let quoted = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "{{ .Release.Name }}-web"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "{{ .Values.image }}"}]}}}});
        assert_eq!(in_decided_fields(&quoted).unwrap().what, "metadata.name: {{ .Release.Name }}-web");
        let container = json!({"kind": "List", "items": [{"spec": {"template": {"spec": {"containers": [{"name": "{{ x }}"}]}}}}]});
        assert_eq!(
            in_decided_fields(&container).unwrap().what,
            "items[0].spec.template.spec.containers[0].name: {{ x }}"
        );
        let data =
            json!({"kind": "ConfigMap", "metadata": {"name": "rules"}, "data": {"r": "{{ $labels.x }}"}});
        assert_eq!(in_decided_fields(&data), None);
    }
}
