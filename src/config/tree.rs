//! The generic document tree every configuration source is turned into.
//!
//! YAML and TOML are parsed into the same [`Node`] tree, with the line each node
//! came from; environment overrides are grafted onto it with their variable
//! name as origin. Only then is the tree deserialized into the raw structs, so
//! problems can always be reported with a key path and a place.

use std::fmt;

/// Where a node came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Origin {
    /// A line (1-based) of the configuration file.
    File(u64),
    /// An `OSAPI_*` environment variable.
    Env(String),
    /// Synthesized (defaults, intermediate sections created by an override).
    #[default]
    None,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `node.agent.consumer.back_off[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn child_key(&self, key: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        KeyPath(v)
    }

    pub fn child_index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }

    /// Parses the textual form back (the inverse of `Display`). Map keys that
    /// contain dots cannot round-trip; callers only use this to find a line.
    pub fn parse(s: &str) -> KeyPath {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                segs.push(Seg::Key(name.to_owned()));
            }
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &stripped[end + 1..];
            }
        }
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A mapping entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
    /// A node that failed to deserialize and was taken out so the rest of the
    /// document can still be checked. Readers skip it.
    Removed,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub origin: Origin,
    /// The literal source text of a non-string scalar (`8080`, `1.20`, `true`),
    /// so a string-typed key accepts `hostname: 1234` or `version: 1.20` verbatim.
    pub text: Option<String>,
}

impl Node {
    pub fn new(kind: Kind, origin: Origin) -> Node {
        Node {
            kind,
            origin,
            text: None,
        }
    }

    pub fn empty_map() -> Node {
        Node::new(Kind::Map(Vec::new()), Origin::None)
    }

    /// A short description for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null | Kind::Removed => "nothing (null)".to_owned(),
            Kind::Bool(b) => format!("boolean {b}"),
            Kind::Int(i) => format!("integer {i}"),
            Kind::Float(x) => format!("number {x}"),
            Kind::Str(s) => format!("string {s:?}"),
            Kind::Seq(_) => "a list".to_owned(),
            Kind::Map(_) => "a mapping".to_owned(),
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .rev()
                .find(|e| e.key == key && e.value.kind != Kind::Removed),
            _ => None,
        }
    }

    /// The node at `path`, if present.
    #[cfg(test)]
    pub fn get(&self, path: &KeyPath) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = match (seg, &node.kind) {
                (Seg::Key(k), _) => &node.entry(k)?.value,
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        (node.kind != Kind::Removed).then_some(node)
    }

    /// Where the value at `path` was written: the value's own line, or, when the
    /// value is absent, the nearest enclosing node that has a place.
    /// A key the file never mentions has no place (`Origin::None`).
    pub fn origin_of(&self, path: &KeyPath) -> Origin {
        let mut best = Origin::None;
        let mut node = self;
        for seg in &path.0 {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), _) => node.entry(k).map(|e| {
                    // The key's line is a better anchor than a section's first child.
                    if e.key_origin != Origin::None {
                        best = e.key_origin.clone();
                    }
                    &e.value
                }),
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            if next.origin != Origin::None && !matches!(next.kind, Kind::Map(_)) {
                best = next.origin.clone();
            }
            node = next;
        }
        best
    }

    /// Marks the node at `path` as removed. Returns false when there is nothing
    /// to remove (so the caller can stop instead of looping).
    pub fn remove(&mut self, path: &KeyPath) -> bool {
        let Some((last, parents)) = path.0.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parents {
            node = match (seg, &mut node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => {
                    match entries
                        .iter_mut()
                        .rev()
                        .find(|e| e.key == *k && e.value.kind != Kind::Removed)
                    {
                        Some(e) => &mut e.value,
                        None => return false,
                    }
                }
                (Seg::Index(i), Kind::Seq(items)) => match items.get_mut(*i) {
                    Some(n) => n,
                    None => return false,
                },
                _ => return false,
            };
        }
        let target = match (last, &mut node.kind) {
            (Seg::Key(k), Kind::Map(entries)) => entries
                .iter_mut()
                .rev()
                .find(|e| e.key == *k && e.value.kind != Kind::Removed)
                .map(|e| &mut e.value),
            (Seg::Index(i), Kind::Seq(items)) => items.get_mut(*i),
            _ => None,
        };
        match target {
            Some(n) if n.kind != Kind::Removed => {
                n.kind = Kind::Removed;
                true
            }
            _ => false,
        }
    }

    /// Sets `path` (keys only) to `value`, creating sections on the way. An
    /// existing non-mapping in the way is replaced: the override wins.
    pub fn set(&mut self, path: &[String], value: Node) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        if !matches!(self.kind, Kind::Map(_)) {
            self.kind = Kind::Map(Vec::new());
            self.text = None;
        }
        if let Kind::Map(entries) = &mut self.kind {
            let pos = entries
                .iter()
                .rposition(|e| e.key == *first && e.value.kind != Kind::Removed);
            let idx = match pos {
                Some(i) => i,
                None => {
                    entries.push(Entry {
                        key: first.clone(),
                        key_origin: value.origin.clone(),
                        value: Node::new(Kind::Null, Origin::None),
                    });
                    entries.len() - 1
                }
            };
            if let Some(entry) = entries.get_mut(idx) {
                if rest.is_empty() {
                    entry.key_origin = value.origin.clone();
                    entry.value = value;
                } else {
                    entry.value.set(rest, value);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// YAML

/// A syntax error in a source: message and, when known, its line.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub line: Option<u64>,
    pub message: String,
}

/// Intermediate YAML value with locations, as serde-saphyr hands it out.
enum YValue {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Seq(Vec<serde_saphyr::Spanned<YValue>>),
    Map(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<YValue>)>),
}

impl<'de> serde::Deserialize<'de> for YValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = YValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<YValue, E> {
                Ok(YValue::Null)
            }
            fn visit_none<E>(self) -> Result<YValue, E> {
                Ok(YValue::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<YValue, D::Error> {
                <YValue as serde::Deserialize>::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<YValue, E> {
                Ok(YValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<YValue, E> {
                Ok(YValue::I64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<YValue, E> {
                Ok(YValue::U64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<YValue, E> {
                Ok(YValue::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<YValue, E> {
                Ok(YValue::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<YValue, E> {
                Ok(YValue::Str(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<YValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(YValue::Seq(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<YValue, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key()? {
                    entries.push((key, a.next_value()?));
                }
                Ok(YValue::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans only: `yes`/`no`/`on` stay strings (hostnames, labels).
    options.strict_booleans = true;
    options
}

/// Parses YAML text into a tree. `origin` overrides the per-node line origin
/// (used for environment values, where lines mean nothing).
pub(crate) fn parse_yaml(src: &str, env_origin: Option<&Origin>) -> Result<Node, SyntaxError> {
    let parsed: serde_saphyr::Spanned<YValue> =
        serde_saphyr::from_str_with_options(src, yaml_options()).map_err(|e| {
            let inner = e.without_snippet().to_string();
            // The message repeats the position; the line is reported separately.
            let message = match inner.rfind(" at line ") {
                Some(i) => inner[..i].to_owned(),
                None => inner,
            };
            SyntaxError {
                line: e.location().map(|l| l.line()).filter(|l| *l > 0),
                message,
            }
        })?;
    Ok(convert_yaml(parsed, src, env_origin))
}

fn yaml_origin(loc: &serde_saphyr::Location, env_origin: Option<&Origin>) -> Origin {
    match env_origin {
        Some(o) => o.clone(),
        None if loc.line() > 0 => Origin::File(loc.line()),
        None => Origin::None,
    }
}

/// The literal text of a scalar, from its definition site (so aliases give the
/// anchored scalar, not `*name`).
fn yaml_text(loc: &serde_saphyr::Location, src: &str) -> Option<String> {
    let span = loc.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    src.get(start..start.checked_add(len)?).map(str::to_owned)
}

fn convert_yaml(v: serde_saphyr::Spanned<YValue>, src: &str, env: Option<&Origin>) -> Node {
    let origin = yaml_origin(&v.referenced, env);
    let text = || yaml_text(&v.defined, src);
    let (kind, text) = match v.value {
        YValue::Null => (Kind::Null, None),
        YValue::Bool(b) => (Kind::Bool(b), text()),
        YValue::I64(i) => (Kind::Int(i128::from(i)), text()),
        YValue::U64(u) => (Kind::Int(i128::from(u)), text()),
        YValue::F64(x) => (Kind::Float(x), text()),
        YValue::Str(s) => (Kind::Str(s), None),
        YValue::Seq(items) => (
            Kind::Seq(
                items
                    .into_iter()
                    .map(|i| convert_yaml(i, src, env))
                    .collect(),
            ),
            None,
        ),
        YValue::Map(entries) => (
            Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, val)| Entry {
                        key_origin: yaml_origin(&k.referenced, env),
                        key: k.value,
                        value: convert_yaml(val, src, env),
                    })
                    .collect(),
            ),
            None,
        ),
    };
    Node { kind, origin, text }
}

// ---------------------------------------------------------------------------
// TOML

/// Maps byte offsets to 1-based line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn new(src: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }
    fn line(&self, offset: usize) -> u64 {
        let idx = match self.0.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        u64::try_from(idx + 1).unwrap_or(u64::MAX)
    }
}

pub(crate) fn parse_toml(src: &str) -> Result<Node, SyntaxError> {
    let lines = Lines::new(src);
    let table = toml::de::DeTable::parse(src).map_err(|e| SyntaxError {
        line: e.span().map(|s| lines.line(s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let span = table.span();
    let root = toml::Spanned::new(span, toml::de::DeValue::Table(table.into_inner()));
    Ok(convert_toml(root, src, &lines))
}

fn convert_toml(v: toml::Spanned<toml::de::DeValue<'_>>, src: &str, lines: &Lines) -> Node {
    use toml::de::DeValue;
    let span = v.span();
    let origin = Origin::File(lines.line(span.start));
    let text = src.get(span.clone()).map(str::to_owned);
    let kind = match v.into_inner() {
        DeValue::String(s) => Kind::Str(s.into_owned()),
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Kind::Int(n),
            Err(_) => Kind::Str(i.as_str().to_owned()),
        },
        DeValue::Float(x) => match x.as_str().parse::<f64>() {
            Ok(n) => Kind::Float(n),
            Err(_) => Kind::Str(x.as_str().to_owned()),
        },
        DeValue::Boolean(b) => Kind::Bool(b),
        // No key of ours is a date; keep it as text so the error says what it got.
        DeValue::Datetime(d) => Kind::Str(d.to_string()),
        DeValue::Array(items) => Kind::Seq(
            items
                .into_iter()
                .map(|i| convert_toml(i, src, lines))
                .collect(),
        ),
        DeValue::Table(table) => {
            let mut entries: Vec<Entry> = table
                .into_iter()
                .map(|(k, val)| Entry {
                    key_origin: Origin::File(lines.line(k.span().start)),
                    key: k.into_inner().into_owned(),
                    value: convert_toml(val, src, lines),
                })
                .collect();
            // Tables come back sorted by key; source order reads better in errors.
            entries.sort_by_key(|e| match e.key_origin {
                Origin::File(l) => l,
                _ => 0,
            });
            Kind::Map(entries)
        }
    };
    let text = match kind {
        Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => text,
        _ => None,
    };
    Node { kind, origin, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_round_trips() {
        let p = KeyPath::parse("node.agent.consumer.back_off[1]");
        assert_eq!(p.to_string(), "node.agent.consumer.back_off[1]");
        assert_eq!(p.0.len(), 5);
    }

    #[test]
    fn yaml_lines_and_text() {
        let n = parse_yaml("a:\n  port: 8080\n  v: 1.20\n", None).unwrap();
        let port = n.get(&KeyPath::parse("a.port")).unwrap();
        assert_eq!(port.origin, Origin::File(2));
        assert_eq!(port.kind, Kind::Int(8080));
        let v = n.get(&KeyPath::parse("a.v")).unwrap();
        assert_eq!(v.text.as_deref(), Some("1.20"));
    }

    #[test]
    fn toml_lines() {
        let n = parse_toml("debug = true\n\n[api.server]\nport = 9\n").unwrap();
        let port = n.get(&KeyPath::parse("api.server.port")).unwrap();
        assert_eq!(port.origin, Origin::File(4));
        assert_eq!(
            n.origin_of(&KeyPath::parse("api.server.port")),
            Origin::File(4)
        );
    }
}
