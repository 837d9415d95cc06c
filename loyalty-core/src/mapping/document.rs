//! The request body as the mapping engine reads it.

use super::projection::Projection;
use indexmap::IndexMap;
use jsonata_core::value::{JArray, JValue};
use simd_json::{Node, StaticNode};
use std::cell::RefCell;
use std::fmt::{self, Debug};
use std::rc::Rc;

/// The deepest nesting accepted: serde_json's limit (127 levels), so that the fast path and
/// the path that locates errors agree on every input.
const MAX_DEPTH: usize = 127;

/// A JSON document parsed once from the request body, in the mapping engine's own value type,
/// so that no item goes through another JSON tree or back to text on its way into the mapping.
/// It is not `Send`: parse, map and validate happen in one synchronous step.
pub struct Document(pub(super) JValue);

impl Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Document(..)")
    }
}

/// Why a body is not JSON, with the place of the fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonSyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// A body split into items, each parsed for the mapping and kept as received for the log.
#[derive(Debug)]
pub struct Body<'a> {
    /// The body was a JSON array (a bulk).
    pub bulk: bool,
    pub items: Vec<BodyItem<'a>>,
}

/// One item of a body.
#[derive(Debug)]
pub struct BodyItem<'a> {
    pub document: Document,
    /// The item's JSON text exactly as received.
    pub raw: std::borrow::Cow<'a, str>,
}

/// Why a body was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    Syntax(JsonSyntaxError),
    TooManyItems(usize),
}

impl Document {
    /// Parses JSON text whole. Nesting is limited to 127 levels for any input, so a deeply
    /// nested body is an error, not a stack overflow. Numbers beyond f64, invalid UTF-8 and
    /// lone surrogates are errors too.
    pub fn parse(bytes: &[u8]) -> Result<Document, JsonSyntaxError> {
        Self::parse_projected(bytes, &Projection::Whole)
    }

    /// Parses JSON text, checking all of it but building only what `projection` keeps: a
    /// mapping that reads five fields of a 1.4 KB payload gets those five fields (see
    /// [`Projection`]).
    pub fn parse_projected(
        bytes: &[u8],
        projection: &Projection,
    ) -> Result<Document, JsonSyntaxError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(JsonSyntaxError {
                message: "the body is empty".into(),
                line: 1,
                column: 1,
            });
        }
        // simd-json is the fastest way to check the text (UTF-8 included) and find the fields,
        // but it lets lone surrogates (`"\ud800"`) through: text that has a surrogate escape,
        // or fails the fast path in any way, goes through serde_json, which refuses what is
        // wrong and says where.
        if !has_surrogate_escape(bytes) {
            if let Some(value) = parse_with_simd(bytes, projection) {
                return Ok(Document(value));
            }
        }
        serde_json::from_slice::<JValue>(bytes)
            .map(Document)
            .map_err(|e| JsonSyntaxError {
                message: strip_position(&e.to_string()),
                line: e.line(),
                column: e.column(),
            })
    }

    /// Parses a request body: one object, or an array of items (at most `max_items`). Each
    /// item's text is kept as received, so that the log shows what was sent and nothing is
    /// serialized again.
    pub fn parse_body<'a>(
        bytes: &'a [u8],
        max_items: usize,
        projection: &Projection,
    ) -> Result<Body<'a>, BodyError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            // A first pass only finds the items' spans (and checks the whole syntax and
            // nesting); each item is then parsed on its own.
            let spans: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(bytes) {
                Ok(spans) => spans,
                Err(_) => return Err(BodyError::Syntax(Self::syntax_error(bytes))),
            };
            if spans.len() > max_items {
                return Err(BodyError::TooManyItems(spans.len()));
            }
            let mut items = Vec::with_capacity(spans.len());
            for span in spans {
                let document = match Self::parse_projected(span.get().as_bytes(), projection) {
                    Ok(document) => document,
                    Err(_) => return Err(BodyError::Syntax(Self::syntax_error(bytes))),
                };
                items.push(BodyItem {
                    document,
                    raw: std::borrow::Cow::Borrowed(span.get()),
                });
            }
            return Ok(Body { bulk: true, items });
        }
        let document = Self::parse_projected(bytes, projection).map_err(BodyError::Syntax)?;
        // It parsed, so it is UTF-8.
        let raw = std::str::from_utf8(bytes).unwrap_or_default().trim();
        Ok(Body {
            bulk: false,
            items: vec![BodyItem {
                document,
                raw: std::borrow::Cow::Borrowed(raw),
            }],
        })
    }

    /// The located error of a body that does not parse as one JSON value.
    fn syntax_error(bytes: &[u8]) -> JsonSyntaxError {
        match Self::parse(bytes) {
            Err(e) => e,
            Ok(_) => JsonSyntaxError {
                message: "the body is not valid JSON".into(),
                line: 1,
                column: 1,
            },
        }
    }

    /// From a value already parsed by serde_json (an admin's simulation payload), split like
    /// a body.
    pub fn items_of(
        value: serde_json::Value,
        max_items: usize,
    ) -> Result<Body<'static>, BodyError> {
        let (bulk, values) = match value {
            serde_json::Value::Array(values) => (true, values),
            other => (false, vec![other]),
        };
        if values.len() > max_items {
            return Err(BodyError::TooManyItems(values.len()));
        }
        let items = values
            .into_iter()
            .map(|value| BodyItem {
                raw: std::borrow::Cow::Owned(value.to_string()),
                document: Document(JValue::from(value)),
            })
            .collect();
        Ok(Body { bulk, items })
    }

    /// From a value already parsed by serde_json.
    pub fn from_json(value: serde_json::Value) -> Document {
        Document(JValue::from(value))
    }

    pub fn is_object(&self) -> bool {
        matches!(self.0, JValue::Object(_))
    }

    /// The document as compact JSON text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "null".into())
    }

    /// The document as a serde_json value (for mappings that are not JSONata).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

/// Whether the text has a `\uD800`–`\uDFFF` escape (any case).
fn has_surrogate_escape(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\\u").any(|at| {
        matches!(bytes.get(at + 2), Some(b'd' | b'D'))
            && matches!(
                bytes.get(at + 3),
                Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            )
    })
}

/// The fast path: simd-json checks the whole text and lays it out on a tape, from which only
/// the projected values are built. `None` when simd-json refuses the text (serde_json then
/// finds and locates the fault) or nests deeper than [`MAX_DEPTH`].
fn parse_with_simd(bytes: &[u8], projection: &Projection) -> Option<JValue> {
    thread_local! {
        // simd-json parses in place and needs scratch buffers: both are reused.
        static SCRATCH: RefCell<(Vec<u8>, simd_json::Buffers)> =
            RefCell::new((Vec::new(), simd_json::Buffers::with_max_depth(0, MAX_DEPTH)));
    }
    SCRATCH.with(|scratch| {
        let (copy, buffers) = &mut *scratch.borrow_mut();
        copy.clear();
        copy.extend_from_slice(bytes);
        let tape = simd_json::to_tape_with_buffers(copy, buffers).ok()?;
        // simd-json refused anything nested deeper than MAX_DEPTH (its buffers carry the
        // limit; a test checks it agrees with serde_json's).
        build(tape.0.as_slice(), 0, projection).map(|(value, _)| value)
    })
}

/// The index just past the value that starts at `at`.
fn skip(nodes: &[Node<'_>], at: usize) -> usize {
    match nodes
        .get(at)
        .copied()
        .unwrap_or(Node::Static(StaticNode::Null))
    {
        Node::Object { count, .. } | Node::Array { count, .. } => at + count + 1,
        _ => at + 1,
    }
}

/// Builds the value that starts at `at`, as far as `projection` keeps it; returns it with the
/// index just past it (`None` for a tape not shaped as documented, which would be a simd-json
/// bug: the caller then parses with serde_json). Recursion is bounded by the depth checked
/// before.
fn build(nodes: &[Node<'_>], at: usize, projection: &Projection) -> Option<(JValue, usize)> {
    Some(match *nodes.get(at)? {
        Node::String(text) => (JValue::String(Rc::from(text)), at + 1),
        Node::Static(value) => (scalar(value), at + 1),
        Node::Array { len, .. } => {
            let mut items = Vec::with_capacity(len);
            // Input arrays are never `cons`: flat when they hold no array (as jsonata-core's
            // own parse marks them).
            let mut flat = true;
            let mut next = at + 1;
            for _ in 0..len {
                let (item, after) = build(nodes, next, projection)?;
                flat &= !matches!(item, JValue::Array(_));
                items.push(item);
                next = after;
            }
            (JValue::Array(JArray::new_flat(items, flat)), next)
        }
        Node::Object { len, .. } => {
            let mut fields = IndexMap::with_capacity(match projection {
                Projection::Whole => len,
                Projection::Fields(kept) => kept.len().min(len),
            });
            let mut next = at + 1;
            for _ in 0..len {
                let Node::String(key) = *nodes.get(next)? else {
                    return None;
                };
                next += 1;
                match projection.field(key) {
                    Some(kept) => {
                        let (value, after) = build(nodes, next, kept)?;
                        // A repeated key: the last value wins, in the first one's place.
                        fields.insert(key.to_owned(), value);
                        next = after;
                    }
                    None => next = skip(nodes, next),
                }
            }
            (JValue::object(fields), next)
        }
    })
}

fn scalar(value: StaticNode) -> JValue {
    match value {
        StaticNode::Null => JValue::Null,
        StaticNode::Bool(b) => JValue::Bool(b),
        StaticNode::I64(n) => JValue::Number(n as f64),
        StaticNode::U64(n) => JValue::Number(n as f64),
        StaticNode::F64(n) => JValue::Number(n),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn only(name: &str) -> Projection {
        Projection::Fields(BTreeMap::from([(name.to_owned(), Projection::Whole)]))
    }

    fn json(document: &Document) -> serde_json::Value {
        document.to_json()
    }

    #[test]
    fn builds_only_the_projected_fields() {
        let text = br#"{"a": {"x": [1, {"y": 2}]}, "b": [1, 2.5, -3, true, null, "s"], "a": 7}"#;
        let whole = Document::parse(text).unwrap();
        assert_eq!(
            json(&whole),
            serde_json::json!({"a": 7, "b": [1, 2.5, -3, true, null, "s"]})
        );
        let part = Document::parse_projected(text, &only("b")).unwrap();
        assert_eq!(
            json(&part),
            serde_json::json!({"b": [1, 2.5, -3, true, null, "s"]})
        );
        // Through arrays, each item is projected.
        let items = br#"{"items": [{"p": 1, "q": 2}, {"q": 3}, 4]}"#;
        let projection = Projection::Fields(BTreeMap::from([("items".to_owned(), only("p"))]));
        assert_eq!(
            json(&Document::parse_projected(items, &projection).unwrap()),
            serde_json::json!({"items": [{"p": 1}, {}, 4]})
        );
    }

    #[test]
    fn fields_not_read_are_still_checked() {
        let projection = only("a");
        for bad in [
            &br#"{"a": 1, "b": 1e400}"#[..],
            br#"{"a": 1, "b": "\ud800"}"#,
            b"{\"a\": 1, \"b\": \"\xff\"}",
            br#"{"a": 1, "b": NaN}"#,
            br#"{"a": 1, "b": [1,]}"#,
            br#"{"a": 1} x"#,
        ] {
            assert!(
                Document::parse_projected(bad, &projection).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A surrogate pair is fine, in a field read or not.
        let pair = br#"{"a": "\ud83d\ude00", "b": "\uD83D\uDE00"}"#;
        assert_eq!(
            json(&Document::parse_projected(pair, &projection).unwrap()),
            serde_json::json!({"a": "😀", "b": "😀"})
        );
    }

    #[test]
    fn nesting_is_limited_the_same_on_both_paths() {
        let nested = |levels: usize, inside: &str| {
            format!(
                "{{\"a\": 1, \"b\": {}{inside}{}}}",
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        // The object itself is one level.
        assert!(Document::parse_projected(nested(126, "").as_bytes(), &only("a")).is_ok());
        assert!(Document::parse_projected(nested(127, "").as_bytes(), &only("a")).is_err());
        assert!(Document::parse(nested(127, "").as_bytes()).is_err());
        // Through serde_json (a surrogate escape routes there) the limit is the same.
        assert!(Document::parse(nested(126, "\"\\ud83d\\ude00\"").as_bytes()).is_ok());
        assert!(Document::parse(nested(127, "\"\\ud83d\\ude00\"").as_bytes()).is_err());
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(Document::parse(deep.as_bytes()).is_err());
    }
}
