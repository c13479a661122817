//! The set of known key paths, derived from the raw structs themselves.
//!
//! Environment variables flatten key paths with `_`, which is ambiguous
//! (`nats.kv.jobs_bucket` vs `nats.kv.jobs.bucket`). Rather than guess, the
//! overlay looks names up in this schema. The schema is not a hand-kept list:
//! it is traced from the `Deserialize` impls of [`RawConfig`] (serde hands a
//! deserializer each struct's field names), so it cannot drift from the file
//! format.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::value::StrDeserializer;
use serde::de::{self, Deserialize, IntoDeserializer, Visitor};

use super::raw::RawConfig;

/// What a key holds, as far as the environment overlay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// A string (also durations, paths, addresses): env values are taken verbatim.
    Text,
    /// One of a fixed set of words: taken verbatim.
    Enum,
    /// A number or boolean: parsed as a YAML scalar.
    Scalar,
    /// A list: parsed as YAML (`[a, b]`).
    List,
    /// A map with free keys (labels, roles): parsed as YAML (`{k: v}`); single
    /// entries can also be set with `<VAR>_<KEY>`.
    Map,
}

#[derive(Debug, Clone)]
pub(crate) struct SchemaKey {
    pub path: Vec<String>,
    pub kind: KeyKind,
    pub env_var: String,
}

#[derive(Debug, Default)]
pub(crate) struct Schema {
    /// Every key, in definition order of the structs.
    pub keys: Vec<SchemaKey>,
    /// Env var name → index in `keys`.
    pub by_env: HashMap<String, usize>,
    /// Env var names of sections (`OSAPI_API_SERVER`), which cannot be set.
    pub sections: HashMap<String, String>,
}

pub(crate) const ENV_PREFIX: &str = "OSAPI_";

pub(crate) fn env_name(path: &[String]) -> String {
    format!("{ENV_PREFIX}{}", path.join("_").to_ascii_uppercase())
}

/// The schema, traced once.
pub(crate) fn schema() -> Result<&'static Schema, String> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA.get_or_init(trace).as_ref().map_err(Clone::clone)
}

#[derive(Default)]
struct TraceState {
    leaves: Vec<(Vec<String>, KeyKind)>,
    sections: Vec<Vec<String>>,
}

/// Runs `RawConfig::deserialize` against a probing deserializer, repeatedly.
/// Each run walks into sections, and stops at the first key that is not a
/// section, recording its kind. The next run leaves known keys out (every raw
/// field is optional), so it gets one key further. It ends when a run completes.
fn trace() -> Result<Schema, String> {
    let state = RefCell::new(TraceState::default());
    // Bounded: each round learns one key; the format has ~100.
    for _ in 0..10_000 {
        let before = state.borrow().leaves.len();
        match RawConfig::deserialize(Tracer {
            path: Vec::new(),
            state: &state,
        }) {
            Ok(_) => return Ok(build_schema(state.into_inner())),
            Err(e) if e.0 == RESTART && state.borrow().leaves.len() > before => continue,
            Err(e) => return Err(format!("cannot derive the configuration schema: {}", e.0)),
        }
    }
    Err("cannot derive the configuration schema: no progress".to_owned())
}

fn build_schema(state: TraceState) -> Schema {
    let mut schema = Schema::default();
    for (path, kind) in state.leaves {
        let env_var = env_name(&path);
        schema.by_env.insert(env_var.clone(), schema.keys.len());
        schema.keys.push(SchemaKey {
            path,
            kind,
            env_var,
        });
    }
    for path in state.sections.into_iter().filter(|p| !p.is_empty()) {
        schema.sections.insert(env_name(&path), path.join("."));
    }
    schema
}

const RESTART: &str = "\0restart";

#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

struct Tracer<'s> {
    path: Vec<String>,
    state: &'s RefCell<TraceState>,
}

impl Tracer<'_> {
    fn leaf<T>(self, kind: KeyKind) -> Result<T, TraceError> {
        let mut state = self.state.borrow_mut();
        if !state.leaves.iter().any(|(p, _)| *p == self.path) {
            state.leaves.push((self.path, kind));
        }
        Err(TraceError(RESTART.to_owned()))
    }
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::Scalar)
    }
    fn deserialize_str<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::Text)
    }
    fn deserialize_string<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::Text)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::Enum)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::List)
    }
    fn deserialize_map<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, TraceError> {
        self.leaf(KeyKind::Map)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, TraceError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, TraceError> {
        let pending: Vec<&'static str> = {
            let mut state = self.state.borrow_mut();
            if !state.sections.contains(&self.path) {
                state.sections.push(self.path.clone());
            }
            fields
                .iter()
                .copied()
                .filter(|f| {
                    let mut p = self.path.clone();
                    p.push((*f).to_owned());
                    !state.leaves.iter().any(|(l, _)| *l == p)
                })
                .collect()
        };
        v.visit_map(TraceMap {
            fields: pending,
            next: 0,
            tracer: self,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct TraceMap<'s> {
    fields: Vec<&'static str>,
    next: usize,
    tracer: Tracer<'s>,
}

impl<'de> de::MapAccess<'de> for TraceMap<'_> {
    type Error = TraceError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let d: StrDeserializer<'_, TraceError> = field.into_deserializer();
        seed.deserialize(d).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let field = self.fields.get(self.next).copied().unwrap_or_default();
        self.next += 1;
        let mut path = self.tracer.path.clone();
        path.push(field.to_owned());
        seed.deserialize(Tracer {
            path,
            state: self.tracer.state,
        })
    }
}

/// Key path → kind, for documentation and tests.
#[cfg(test)]
pub(crate) fn key_map() -> std::collections::BTreeMap<String, KeyKind> {
    schema()
        .map(|s| s.keys.iter().map(|k| (k.path.join("."), k.kind)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_traced_from_the_raw_structs() {
        let keys = key_map();
        assert_eq!(keys.get("api.server.port"), Some(&KeyKind::Scalar));
        assert_eq!(keys.get("api.server.listen"), Some(&KeyKind::Text));
        assert_eq!(keys.get("node.agent.labels"), Some(&KeyKind::Map));
        assert_eq!(
            keys.get("node.agent.consumer.back_off"),
            Some(&KeyKind::List)
        );
        assert_eq!(keys.get("nats.stream.storage"), Some(&KeyKind::Enum));
        assert_eq!(keys.get("nats.kv.jobs_bucket"), Some(&KeyKind::Text));
        assert_eq!(keys.get("api.server.nats.auth.type"), Some(&KeyKind::Enum));
        assert_eq!(keys.get("api.server.request_timeout"), Some(&KeyKind::Text));
        assert_eq!(
            keys.get("api.server.max_body_bytes"),
            Some(&KeyKind::Scalar)
        );
        assert!(!keys.contains_key("api.server"));
        assert!(keys.len() > 60, "{}", keys.len());
    }

    #[test]
    fn env_names_are_unambiguous() {
        let schema = schema().unwrap();
        assert_eq!(schema.by_env.len(), schema.keys.len());
        for name in schema.by_env.keys() {
            assert!(
                !schema.sections.contains_key(name),
                "{name} is both a key and a section"
            );
        }
        let k = &schema.keys[schema.by_env["OSAPI_NODE_AGENT_CONSUMER_ACK_WAIT"]];
        assert_eq!(k.path.join("."), "node.agent.consumer.ack_wait");
    }
}
