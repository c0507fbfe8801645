//! Reading a value the gateway decides on (a funds call's amount and
//! counterparty, RSK-1/RSK-2; the account a consent must name, USR-4) the
//! way the upstream will, or not at all.
//!
//! The gateway parses the body with `serde_json`, where a member named twice
//! keeps its last value; the bank's service parses the same bytes with its
//! own library, which may keep the first, or (fastjson's "smart match",
//! Jackson's case-insensitive properties) bind `AMOUNT`, `Amount` or
//! `a_mount` to the field `amount`. A body
//! `{"amount": "1.00", "AMOUNT": "999999.00"}` would then pass the risk
//! rules at 1.00 and move 999,999.00. So where the gateway decides on a
//! member, the body must name it unambiguously: no member named twice
//! anywhere in the body ([`parse`]), and along the pointer no sibling whose
//! name folds (ASCII case, `_` and `-` ignored) to the same name
//! ([`ambiguous_at`]).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parse `body` as JSON, refusing a member named twice in one object.
pub fn parse(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = de.deserialize_any(Strict)?;
    de.end()?;
    Ok(v)
}

/// Builds a [`Value`], refusing duplicate members.
struct Strict;

/// One nested value, built by [`Strict`].
struct Nested(Value);

impl<'de> de::Deserialize<'de> for Nested {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Strict).map(Nested)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Nested(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "member `{}` named twice",
                    k.chars().take(64).collect::<String>()
                )));
            }
            let Nested(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A member name as lenient binders match it: ASCII case, `_` and `-`
/// ignored.
fn folded(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
}

/// Where along `pointer` (RFC 6901) an object also holds a member whose
/// name differs from the pointer's segment but folds to the same name
/// (see the module documentation): the pointer of that object's member,
/// or `None` when the pointer names its value unambiguously.
pub fn ambiguous_at(body: &Value, pointer: &str) -> Option<String> {
    let mut at = body;
    let mut path = String::new();
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Value::Object(m) => {
                if let Some(other) = m.keys().find(|k| **k != seg && folded(k).eq(folded(&seg))) {
                    return Some(format!(
                        "{path}/{}",
                        other
                            .chars()
                            .take(64)
                            .collect::<String>()
                            .replace('~', "~0")
                            .replace('/', "~1")
                    ));
                }
                at = m.get(&seg)?;
            }
            Value::Array(a) => at = a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        }
        path.push('/');
        path.push_str(raw);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn rsk_2_usr_4_duplicate_members_are_refused_anywhere() {
        assert_eq!(
            parse(br#"{"a":{"b":[1,-2,3.5,"x",null,true]},"c":{}}"#).unwrap(),
            json!({"a":{"b":[1,-2,3.5,"x",null,true]},"c":{}})
        );
        for bad in [
            &br#"{"amount":"9","amount":"1"}"#[..],
            br#"{"p":{"amount":"9","x":1,"amount":"1"}}"#,
            br#"[{"a":1},{"b":1,"b":2}]"#,
            br#"{"a\u006d":1,"am":2}"#,
            br#"{"a":1} x"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // The same name in different objects is fine.
        assert!(parse(br#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
    }

    #[test]
    fn rsk_2_usr_4_folded_siblings_along_the_pointer_are_ambiguous() {
        let v = json!({"payment": {"amount": "1.00", "AMOUNT": "9"}, "x": 1});
        assert_eq!(
            ambiguous_at(&v, "/payment/amount").as_deref(),
            Some("/payment/AMOUNT")
        );
        let v = json!({"Payment": {"x": 1}, "payment": {"amount": "1.00"}});
        assert_eq!(
            ambiguous_at(&v, "/payment/amount").as_deref(),
            Some("/Payment")
        );
        let v = json!({"payment": {"amount": "1.00", "a_mount": "9"}});
        assert!(ambiguous_at(&v, "/payment/amount").is_some());
        let v = json!({"payment": {"amount": "1.00", "payee": "x", "amount_cny": "9"}});
        assert_eq!(ambiguous_at(&v, "/payment/amount"), None);
        let v = json!({"items": [{"amount": "1"}, {"AMOUNT": "2"}]});
        assert_eq!(ambiguous_at(&v, "/items/0/amount"), None);
        assert_eq!(ambiguous_at(&v, "/missing/amount"), None);
    }
}
