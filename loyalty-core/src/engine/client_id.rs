//! The `clientEventId` of an item that names none.

use crate::ids::ConnectorId;
use sha2::{Digest, Sha256};

/// A `clientEventId` for an item that names none: a hash of the connector and the item's JSON,
/// in a canonical form (see `write_canonical`), so that the same payload re-serialised by its
/// sender (other spacing, key order or escapes, `1.0` for `1`) is still a duplicate.
pub(crate) fn derived_client_event_id(connector: &ConnectorId, item_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connector.as_str().as_bytes());
    hasher.update(b"\n");
    // simd-json (parsing in place, hence the copy): twice as fast as a serde_json tree here.
    // The body was checked already; should this parse fail anyway, the bytes stand in.
    let mut bytes = item_json.as_bytes().to_vec();
    match simd_json::to_borrowed_value(&mut bytes) {
        Ok(value) => {
            let mut canonical = Vec::with_capacity(item_json.len());
            write_canonical(&value, &mut canonical);
            hasher.update(&canonical);
        }
        Err(_) => hasher.update(item_json.as_bytes()),
    }
    format!("sha256:{}", &hex::encode(hasher.finalize())[..40])
}

/// Compact JSON with object keys sorted (by their UTF-8 bytes; the last of duplicate keys
/// wins, as when parsed), strings escaped as serde_json escapes them, and whole numbers written
/// as integers. Recursion is bounded by the body's depth limit (128), checked before.
fn write_canonical(value: &simd_json::BorrowedValue<'_>, out: &mut Vec<u8>) {
    use simd_json::{BorrowedValue as Value, StaticNode};
    use std::io::Write;
    match value {
        Value::Static(StaticNode::Null) => out.extend_from_slice(b"null"),
        Value::Static(StaticNode::Bool(true)) => out.extend_from_slice(b"true"),
        Value::Static(StaticNode::Bool(false)) => out.extend_from_slice(b"false"),
        Value::Static(StaticNode::I64(n)) => write!(out, "{n}").expect("writing to memory"),
        Value::Static(StaticNode::U64(n)) => write!(out, "{n}").expect("writing to memory"),
        Value::Static(StaticNode::F64(f)) => {
            // A whole f64 is an exact integer: written in digits, as the same number written
            // without a fraction or an exponent is (`1e16`, `1.0e16`, `10000000000000000`).
            if f.fract() == 0.0 && f.abs() < 1e38 {
                write!(out, "{}", *f as i128).expect("writing to memory");
            } else {
                let number = serde_json::Number::from_f64(*f);
                write!(
                    out,
                    "{}",
                    number.map_or_else(|| "null".into(), |n| n.to_string())
                )
                .expect("writing to memory");
            }
        }
        Value::String(text) => {
            serde_json::to_writer(&mut *out, text.as_ref()).expect("writing to memory")
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // simd-json keeps every duplicate key, in order: the stable sort keeps that order,
            // and only the last of equal keys is written.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let last_of_each = entries
                .iter()
                .enumerate()
                .filter(|(index, (key, _))| {
                    entries.get(index + 1).is_none_or(|next| next.0 != *key)
                })
                .map(|(_, entry)| *entry);
            out.push(b'{');
            for (index, (key, item)) in last_of_each.enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_ref()).expect("writing to memory");
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_client_event_id_ignores_how_the_payload_was_serialised() {
        let connector = ConnectorId::new("con_a");
        let id = |text: &str| derived_client_event_id(&connector, text);
        let first = id(r#"{"user":{"email":"ann@example.com","age":30},"tags":["a","b"],"n":1}"#);
        for same in [
            "{ \"n\": 1, \"tags\": [\"a\", \"b\"],\n  \"user\": {\"age\": 30.0, \"email\": \"ann@example.com\"} }",
            r#"{"user":{"age":3e1,"email":"ann\u0040example.com"},"tags":["a","b"],"n":1.0}"#,
        ] {
            assert_eq!(id(same), first, "{same}");
        }
        for other in [
            r#"{"user":{"email":"ann@example.com","age":31},"tags":["a","b"],"n":1}"#,
            r#"{"user":{"email":"ann@example.com","age":30},"tags":["b","a"],"n":1}"#,
            r#"{"user":{"email":"ann@example.com","age":30},"tags":["a","b"],"n":1.5}"#,
            r#"{"user":{"email":"ann@example.com","age":"30"},"tags":["a","b"],"n":1}"#,
        ] {
            assert_ne!(id(other), first, "{other}");
        }
        for (one, other) in [
            (r#"{"n":-0}"#, r#"{"n":0}"#),
            (r#"{"n":-0.0}"#, r#"{"n":0}"#),
            (r#"{"n":1e16}"#, r#"{"n":10000000000000000}"#),
            (r#"{"n":2.5e20}"#, r#"{"n":250000000000000000000}"#),
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"b":0,"a":1,"a":2,"a":3}"#, r#"{"a":3,"b":0}"#),
            (r#"{"s":"\u00e9\/"}"#, r#"{"s":"é/"}"#),
        ] {
            assert_eq!(id(one), id(other), "{one} vs {other}");
        }
        assert_ne!(
            derived_client_event_id(&ConnectorId::new("con_b"), r#"{"n":1}"#),
            id(r#"{"n":1}"#),
            "the connector is part of the id"
        );
        assert!(first.starts_with("sha256:") && first.len() == 47);
    }
}
