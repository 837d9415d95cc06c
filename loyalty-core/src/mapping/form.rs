//! Bodies posted as HTML forms (`application/x-www-form-urlencoded`: Mailchimp, Twilio, form
//! tools) become one JSON object of strings, so that a mapping reads them as it reads JSON:
//! `a[b][c]=v` nests, `a[]=v` and a key given twice make an array. Signatures are checked on
//! the bytes as received, before this.

use serde_json::{Map, Value};

/// Brackets deeper than this stay part of the key's text: a sender cannot build a document
/// deeper than the JSON parser's own limit.
const MAX_DEPTH: usize = 32;

/// The form body as the text of one JSON object.
pub fn form_to_json(body: &[u8]) -> String {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let (name, path) = split_key(&key);
        insert(&mut root, name, &path, Value::String(value.into_owned()));
    }
    Value::Object(root).to_string()
}

/// `a[b][]` → (`a`, [Some("b"), None]); a key without well-formed brackets is its own name.
fn split_key(key: &str) -> (String, Vec<Option<String>>) {
    let Some(open) = key.find('[').filter(|&at| at > 0) else {
        return (key.to_owned(), Vec::new());
    };
    let mut path = Vec::new();
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return (key.to_owned(), Vec::new());
        };
        if path.len() == MAX_DEPTH {
            return (key.to_owned(), Vec::new());
        }
        let segment = &inner[..close];
        path.push((!segment.is_empty()).then(|| segment.to_owned()));
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        return (key.to_owned(), Vec::new());
    }
    (key[..open].to_owned(), path)
}

fn insert(object: &mut Map<String, Value>, name: String, path: &[Option<String>], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        // A plain key given again makes an array of its values.
        match object.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let earlier = existing.take();
                *existing = Value::Array(vec![earlier, value]);
            }
            None => {
                object.insert(name, value);
            }
        }
        return;
    };
    match first {
        // `a[]`: one more element of the array `a`.
        None => {
            let slot = object
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                let earlier = slot.take();
                *slot = Value::Array(vec![earlier]);
            }
            let Value::Array(items) = slot else {
                return;
            };
            if rest.is_empty() {
                items.push(value);
            } else {
                let mut element = Map::new();
                insert_nested(&mut element, rest, value);
                items.push(Value::Object(element));
            }
        }
        Some(key) => {
            let slot = object
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                // A scalar and a nested value under one name: the nested one wins.
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert(inner, key.clone(), rest, value);
            }
        }
    }
}

fn insert_nested(object: &mut Map<String, Value>, path: &[Option<String>], value: Value) {
    if let Some((Some(first), rest)) = path.split_first() {
        insert(object, first.clone(), rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(body: &str) -> Value {
        serde_json::from_str(&form_to_json(body.as_bytes())).unwrap()
    }

    #[test]
    fn forms_become_one_object_of_strings() {
        for (body, expected) in [
            ("a=1&b=two+words", json!({"a": "1", "b": "two words"})),
            (
                "a[b][c]=v&a[b][d]=w",
                json!({"a": {"b": {"c": "v", "d": "w"}}}),
            ),
            ("tags[]=x&tags[]=y", json!({"tags": ["x", "y"]})),
            ("k=1&k=2&k=3", json!({"k": ["1", "2", "3"]})),
            ("e=%E2%82%AC%20%26%3D", json!({"e": "€ &="})),
            (
                "broken[=1&[x]=2&a]b=3",
                json!({"broken[": "1", "[x]": "2", "a]b": "3"}),
            ),
            ("a=1&a[b]=2", json!({"a": {"b": "2"}})),
            (
                "items[][sku]=A&items[][sku]=B",
                json!({"items": [{"sku": "A"}, {"sku": "B"}]}),
            ),
            ("", json!({})),
        ] {
            assert_eq!(form(body), expected, "{body}");
        }
    }

    /// A Mailchimp webhook as Mailchimp documents it ("subscribe" event).
    #[test]
    fn a_mailchimp_subscribe() {
        let body = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98\
                    &data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=api%40mailchimp.com\
                    &data%5Bemail_type%5D=html&data%5Bmerges%5D%5BEMAIL%5D=api%40mailchimp.com\
                    &data%5Bmerges%5D%5BFNAME%5D=Mailchimp&data%5Bmerges%5D%5BLNAME%5D=API\
                    &data%5Bmerges%5D%5BINTERESTS%5D=Group1%2CGroup2&data%5Bip_opt%5D=10.20.10.30";
        let value = form(body);
        assert_eq!(value["type"], "subscribe");
        assert_eq!(value["fired_at"], "2009-03-26 21:35:57");
        assert_eq!(value["data"]["email"], "api@mailchimp.com");
        assert_eq!(value["data"]["merges"]["INTERESTS"], "Group1,Group2");
    }

    #[test]
    fn deep_brackets_stay_text() {
        let key = format!("a{}", "[x]".repeat(MAX_DEPTH + 1));
        let value = form(&format!("{key}=1"));
        assert_eq!(value[&key], "1");
    }
}
