//! Strict JSON: the profile of JSON that the command protocol accepts (`CMD-3`..`CMD-5`).
//!
//! `serde_json` alone keeps the last of two equal member names and nests 128 levels deep.
//! This module walks the text once with a validating [`DeserializeSeed`] that builds the
//! [`Value`] itself, refusing a repeated member name in any object and any array or object
//! nested deeper than [`MAX_JSON_DEPTH`], and stopping at the
//! first fault so that hostile input costs no more than its length.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::CommandError;
use crate::limits::MAX_JSON_DEPTH;

/// A fault found by the validating pass; kept aside because `serde_json` flattens the
/// visitor's errors into strings.
enum Fault {
    TooDeep,
    DuplicateKey(String),
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    /// Containers enclosing the value about to be read.
    depth: usize,
    fault: &'a RefCell<Option<Fault>>,
}

impl Seed<'_> {
    fn fail<E: de::Error>(self, fault: Fault) -> E {
        let text = match &fault {
            Fault::TooDeep => "too deep".to_owned(),
            Fault::DuplicateKey(k) => format!("duplicate key {k:?}"),
        };
        *self.fault.borrow_mut() = Some(fault);
        E::custom(text)
    }

    /// The depth of a container opened here, or the `CMD-4` fault.
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > MAX_JSON_DEPTH {
            return Err(self.fail(Fault::TooDeep));
        }
        Ok(Self { depth, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // CMD-5: a repeated member name anywhere is a parse error.
            if out.contains_key(&key) {
                return Err(self.fail(Fault::DuplicateKey(key)));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses `text` as exactly one strict JSON value: no trailing characters, no member name
/// twice in an object (`CMD-5`), no nesting deeper than 32 (`CMD-4`).
///
/// # Errors
/// [`CommandError::DuplicateKey`], [`CommandError::TooDeep`], or [`CommandError::Parse`]
/// for anything `serde_json` refuses (including trailing characters, `CMD-3`).
pub fn parse_value(text: &str) -> Result<Value, CommandError> {
    let fault = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Seed {
        depth: 0,
        fault: &fault,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(match fault.into_inner() {
            Some(Fault::TooDeep) => CommandError::TooDeep,
            Some(Fault::DuplicateKey(key)) => CommandError::DuplicateKey { key },
            None => CommandError::Parse {
                detail: e.to_string(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn cmd_4_depth_32_accepted_33_refused() {
        assert_eq!(depth(&parse_value(&nested(32)).unwrap()), 32);
        assert_eq!(parse_value(&nested(33)), Err(CommandError::TooDeep));
        // Far deeper than serde_json's own limit still gives our error, not a crash.
        assert_eq!(parse_value(&nested(100_000)), Err(CommandError::TooDeep));
    }

    #[test]
    fn cmd_5_duplicate_keys_at_any_depth() {
        assert_eq!(
            parse_value(r#"{"a":1,"a":2}"#),
            Err(CommandError::DuplicateKey { key: "a".into() })
        );
        assert_eq!(
            parse_value(r#"{"x":[{"b":{"c":1,"c":1}}]}"#),
            Err(CommandError::DuplicateKey { key: "c".into() })
        );
        // Escapes are decoded before comparing: "\u0061" is "a".
        assert_eq!(
            parse_value(r#"{"a":1,"\u0061":2}"#),
            Err(CommandError::DuplicateKey { key: "a".into() })
        );
        // The same name in sibling objects is fine.
        assert!(parse_value(r#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn cmd_3_trailing_characters_and_bad_json() {
        assert!(matches!(
            parse_value(r#"{"a":1} x"#),
            Err(CommandError::Parse { .. })
        ));
        assert!(matches!(
            parse_value(r#"{"a":1}{}"#),
            Err(CommandError::Parse { .. })
        ));
        assert!(matches!(parse_value(""), Err(CommandError::Parse { .. })));
        assert!(matches!(
            parse_value(r#""\ud800""#),
            Err(CommandError::Parse { .. })
        ));
        assert!(parse_value(" {\"a\":1}\n").is_ok());
    }
}
