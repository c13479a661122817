//! A serde `Deserializer` over the [`Node`] tree that reports every problem.
//!
//! serde stops at the first error, so [`deserialize_all`] runs it in a loop:
//! each error carries the key path and origin of the node that caused it; that
//! node is taken out of the tree (every raw field is optional, so a missing node
//! just means "default") and deserialization is retried. Each round removes one
//! node, so the loop ends, and the caller gets the value plus every problem.
//!
//! Unknown keys are caught here, before serde's `deny_unknown_fields` would see
//! them: `deserialize_struct` receives the struct's field names, so it can name
//! the unknown key, its line, and the closest known key.

use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::tree::{Entry, KeyPath, Kind, Node, Origin};

/// A deserialization error, located at the deepest node that caused it.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    pub message: String,
    pub at: Option<(KeyPath, Origin)>,
}

impl DeError {
    fn located(message: String, path: KeyPath, origin: Origin) -> DeError {
        DeError {
            message,
            at: Some((path, origin)),
        }
    }

    /// Attaches a place unless a deeper one is already known.
    fn at(mut self, path: &KeyPath, origin: &Origin) -> DeError {
        if self.at.is_none() {
            self.at = Some((path.clone(), origin.clone()));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
        }
    }
}

/// A problem found while deserializing: where, and what.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub path: KeyPath,
    pub origin: Origin,
    pub message: String,
}

/// Deserializes `T` from `tree`, collecting every problem (see module docs).
/// Nodes that caused problems are left marked as removed in `tree`.
pub(crate) fn deserialize_all<T: DeserializeOwned + Default>(tree: &mut Node) -> (T, Vec<Located>) {
    let mut problems = Vec::new();
    loop {
        match T::deserialize(NodeDe {
            node: tree,
            path: KeyPath::default(),
        }) {
            Ok(value) => return (value, problems),
            Err(e) => {
                let (path, origin) =
                    e.at.unwrap_or_else(|| (KeyPath::default(), tree.origin.clone()));
                let removed = tree.remove(&path);
                problems.push(Located {
                    path,
                    origin,
                    message: humanize(&e.message),
                });
                // An error at the root (or one we cannot pin to a node) ends the
                // loop: retrying would give the same error forever.
                if !removed {
                    return (T::default(), problems);
                }
            }
        }
    }
}

/// Rewords serde's Rust-flavoured messages (`expected u16`) for operators.
fn humanize(message: &str) -> String {
    const TYPES: [(&str, &str); 8] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text"),
    ];
    let mut m = message.to_owned();
    for (from, to) in TYPES {
        if m.ends_with(from) {
            m.truncate(m.len() - from.len());
            m.push_str(to);
        }
    }
    m.replace("unknown variant", "unknown value")
}

/// Deserializer for one node, knowing its own path.
pub(crate) struct NodeDe<'a> {
    pub node: &'a Node,
    pub path: KeyPath,
}

impl NodeDe<'_> {
    fn invalid(&self, expected: &str) -> DeError {
        DeError::located(
            format!("expected {expected}, found {}", self.node.describe()),
            self.path.clone(),
            self.node.origin.clone(),
        )
    }
}

/// Edit distance counting an adjacent swap as one edit (optimal string
/// alignment), for "did you mean" on unknown keys: `prot` is one from `port`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

pub(crate) fn suggest<'f>(key: &str, known: impl IntoIterator<Item = &'f str>) -> Option<&'f str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn unknown_key_message(key: &str, fields: &[&str]) -> String {
    match suggest(key, fields.iter().copied()) {
        Some(s) => format!("unknown key (did you mean {s}?)"),
        None => format!("unknown key (known here: {})", fields.join(", ")),
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Null | Kind::Removed => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => {
                if let Ok(u) = u64::try_from(*i) {
                    visitor.visit_u64(u)
                } else if let Ok(s) = i64::try_from(*i) {
                    visitor.visit_i64(s)
                } else {
                    visitor.visit_i128(*i)
                }
            }
            Kind::Float(x) => visitor.visit_f64(*x),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(SeqAcc::new(items, &self.path)),
            Kind::Map(entries) => visitor.visit_map(MapAcc::new(entries, &self.path)),
        };
        result.map_err(|e| e.at(&self.path, &self.node.origin))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            Kind::Null | Kind::Removed => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result: Result<V::Value, DeError> = match (&self.node.kind, &self.node.text) {
            (Kind::Str(s), _) => visitor.visit_str(s),
            // A number or boolean where text is wanted: take it as written.
            (Kind::Int(_) | Kind::Float(_) | Kind::Bool(_), Some(text)) => visitor.visit_str(text),
            (Kind::Int(i), None) => visitor.visit_string(i.to_string()),
            (Kind::Float(x), None) => visitor.visit_string(x.to_string()),
            (Kind::Bool(b), None) => visitor.visit_string(b.to_string()),
            _ => return Err(self.invalid("a string")),
        };
        result.map_err(|e| e.at(&self.path, &self.node.origin))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Null => visitor.visit_seq(SeqAcc::new(&[], &self.path)),
            Kind::Seq(items) => visitor.visit_seq(SeqAcc::new(items, &self.path)),
            _ => return Err(self.invalid("a list")),
        };
        result.map_err(|e| e.at(&self.path, &self.node.origin))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Null => visitor.visit_map(MapAcc::new(&[], &self.path)),
            Kind::Map(entries) => visitor.visit_map(MapAcc::new(entries, &self.path)),
            _ => return Err(self.invalid("a mapping")),
        };
        result.map_err(|e| e.at(&self.path, &self.node.origin))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries: &[Entry] = match &self.node.kind {
            // An empty section (`server:`) is the same as no section.
            Kind::Null => &[],
            Kind::Map(entries) => entries,
            _ => return Err(self.invalid("a section (mapping of keys)")),
        };
        if let Some(bad) = entries
            .iter()
            .find(|e| e.value.kind != Kind::Removed && !fields.contains(&e.key.as_str()))
        {
            return Err(DeError::located(
                unknown_key_message(&bad.key, fields),
                self.path.child_key(&bad.key),
                bad.key_origin.clone(),
            ));
        }
        visitor
            .visit_map(MapAcc::new(entries, &self.path))
            .map_err(|e| e.at(&self.path, &self.node.origin))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => {
                let d: StrDeserializer<'_, DeError> = s.as_str().into_deserializer();
                visitor
                    .visit_enum(d)
                    .map_err(|e| e.at(&self.path, &self.node.origin))
            }
            _ => Err(self.invalid(&format!("one of {}", variants.join(", ")))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct SeqAcc<'a> {
    items: &'a [Node],
    next: usize,
    path: &'a KeyPath,
}

impl<'a> SeqAcc<'a> {
    fn new(items: &'a [Node], path: &'a KeyPath) -> Self {
        SeqAcc {
            items,
            next: 0,
            path,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        // Removed elements are skipped, but indexes stay those of the source.
        while let Some(item) = self.items.get(self.next) {
            let index = self.next;
            self.next += 1;
            if item.kind == Kind::Removed {
                continue;
            }
            let path = self.path.child_index(index);
            return seed
                .deserialize(NodeDe {
                    node: item,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(&path, &item.origin));
        }
        Ok(None)
    }
}

struct MapAcc<'a> {
    entries: &'a [Entry],
    next: usize,
    current: Option<&'a Entry>,
    path: &'a KeyPath,
}

impl<'a> MapAcc<'a> {
    fn new(entries: &'a [Entry], path: &'a KeyPath) -> Self {
        MapAcc {
            entries,
            next: 0,
            current: None,
            path,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        while let Some(entry) = self.entries.get(self.next) {
            self.next += 1;
            if entry.value.kind == Kind::Removed {
                continue;
            }
            self.current = Some(entry);
            let d: StrDeserializer<'_, DeError> = entry.key.as_str().into_deserializer();
            let path = self.path.child_key(&entry.key);
            return seed
                .deserialize(d)
                .map(Some)
                .map_err(|e| e.at(&path, &entry.key_origin));
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("value requested before key"));
        };
        let path = self.path.child_key(&entry.key);
        seed.deserialize(NodeDe {
            node: &entry.value,
            path: path.clone(),
        })
        .map_err(|e| e.at(&path, &entry.value.origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::parse_yaml;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: Option<u16>,
        name: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Option<Inner>,
        list: Option<Vec<u8>>,
    }

    #[test]
    fn collects_every_problem() {
        let mut tree = parse_yaml(
            "inner:\n  prot: 1\n  port: 99999\n  name: 12\nlist: [1, x, 3]\nextra: 1\n",
            None,
        )
        .unwrap();
        let (v, problems): (Outer, _) = deserialize_all(&mut tree);
        let got: Vec<String> = problems
            .iter()
            .map(|p| format!("{} {:?}", p.path, p.origin))
            .collect();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(got.contains(&"inner.prot File(2)".to_owned()), "{got:?}");
        assert!(got.contains(&"inner.port File(3)".to_owned()), "{got:?}");
        assert!(got.contains(&"list[1] File(5)".to_owned()), "{got:?}");
        assert!(got.contains(&"extra File(6)".to_owned()), "{got:?}");
        let inner = v.inner.unwrap();
        assert_eq!(inner.name.as_deref(), Some("12"));
        assert_eq!(inner.port, None);
        assert_eq!(v.list, Some(vec![1, 3]));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("prot", ["port", "listen"]), Some("port"));
        assert_eq!(suggest("agnet", ["agent"]), Some("agent"));
        assert_eq!(suggest("lsiten", ["listen", "port"]), Some("listen"));
        assert_eq!(suggest("zzzzzz", ["port"]), None);
    }
}
