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
            // The items' spans come from a scan of the structure alone; each item is then
            // parsed (and checked) on its own. A body is taken only when every item parses, so
            // what passes is exactly valid JSON; anything else gets the located error of a
            // parse of the whole body.
            let Some(spans) = bulk_spans(bytes) else {
                return Err(BodyError::Syntax(Self::syntax_error(bytes)));
            };
            if spans.len() > max_items {
                return Err(BodyError::TooManyItems(spans.len()));
            }
            let mut items = Vec::with_capacity(spans.len());
            for span in spans {
                let text = &bytes[span];
                let parsed = Self::parse_projected(text, projection)
                    .ok()
                    .zip(std::str::from_utf8(text).ok());
                let Some((document, raw)) = parsed else {
                    return Err(BodyError::Syntax(Self::syntax_error(bytes)));
                };
                items.push(BodyItem {
                    document,
                    raw: std::borrow::Cow::Borrowed(raw),
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
    pub(crate) fn items_of(
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

/// The spans of a JSON array's items, from its structure alone: strings are skipped (escapes
/// included) and brackets counted, the items themselves are not checked. `None` when the text
/// around the items is not `[`, `,` and `]` with whitespace. Much cheaper than a parse (a
/// `memchr` through each string), and the items are parsed one by one afterwards anyway.
fn bulk_spans(bytes: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let skip_whitespace = |mut at: usize| {
        while bytes.get(at).is_some_and(|b| is_json_whitespace(*b)) {
            at += 1;
        }
        at
    };
    let mut at = skip_whitespace(0);
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_whitespace(at + 1);
    let mut spans = Vec::new();
    if bytes.get(at) == Some(&b']') {
        return (skip_whitespace(at + 1) == bytes.len()).then_some(spans);
    }
    loop {
        let end = value_end(bytes, at)?;
        spans.push(at..end);
        at = skip_whitespace(end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(at + 1),
            Some(b']') => return (skip_whitespace(at + 1) == bytes.len()).then_some(spans),
            _ => return None,
        }
    }
}

fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the value that starts at `start` ends: after its closing bracket or quote, or, for
/// a number or literal, at the first separator.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    loop {
        match *bytes.get(at)? {
            b'"' => at = string_end(bytes, at + 1)?,
            b'{' | b'[' => {
                depth += 1;
                at += 1;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                at += 1;
            }
            b'}' | b']' | b',' if depth == 0 => return (at > start).then_some(at),
            byte if depth == 0 && is_json_whitespace(byte) => return (at > start).then_some(at),
            _ => at += 1,
        }
        if depth == 0 && matches!(bytes[at - 1], b'"' | b'}' | b']') {
            return Some(at);
        }
    }
}

/// Just after the quote that closes the string whose text starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // An escape: the next byte is escaped, whatever it is.
        from = found + 2;
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e300f64..1e300).prop_map(serde_json::Value::from),
            // Quotes, backslashes, brackets and commas inside strings are what the scan skips.
            "[\\[\\]{},:\"\\\\ a-z\u{0}-\u{1f}\u{e9}\u{1F600}]{0,12}"
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z\\]\"]{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What serde_json finds: the items' text, or that the body is not one JSON array of values
    /// it can parse (a `RawValue` lets `1e400` through, a `Value` does not).
    fn serde_json_items(body: &[u8]) -> Option<Vec<String>> {
        let items = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body).ok()?;
        items
            .iter()
            .map(|item| {
                serde_json::from_str::<serde_json::Value>(item.get()).ok()?;
                Some(item.get().to_owned())
            })
            .collect()
    }

    fn parse_body_items(body: &[u8]) -> Option<Vec<String>> {
        Document::parse_body(body, usize::MAX, &Projection::Whole)
            .ok()
            .map(|parsed| {
                parsed
                    .items
                    .into_iter()
                    .map(|item| item.raw.into_owned())
                    .collect()
            })
    }

    #[test]
    fn bulk_spans_take_and_refuse_what_serde_json_does() {
        for (body, expected) in [
            ("[]", Some(vec![])),
            (" [ ] ", Some(vec![])),
            ("[1]", Some(vec!["1"])),
            ("[1,2.5e3 , -0\n]", Some(vec!["1", "2.5e3", "-0"])),
            (r#"["a\"]", "\\"]"#, Some(vec![r#""a\"]""#, r#""\\""#])),
            (
                r#"[{"a":[1,{"b":"}"}]}, true,null ,"x"]"#,
                Some(vec![r#"{"a":[1,{"b":"}"}]}"#, "true", "null", r#""x""#]),
            ),
        ] {
            let expected: Option<Vec<String>> =
                expected.map(|items| items.into_iter().map(str::to_owned).collect());
            assert_eq!(parse_body_items(body.as_bytes()), expected, "{body}");
            assert_eq!(serde_json_items(body.as_bytes()), expected, "{body}");
        }
        for bad in [
            "[",
            "]",
            "[,]",
            "[1,]",
            "[,1]",
            "[1,,2]",
            "[1 2]",
            "[1]]",
            "[[1]",
            "[1] x",
            "[{]",
            "[{}",
            r#"["a]"#,
            r#"["a\"]"#,
            "[tru]",
            "[1}",
            "[{\"a\":1]]",
            "[01]",
            "[\"\u{1}\"]",
        ] {
            assert!(parse_body_items(bad.as_bytes()).is_none(), "{bad}");
            assert!(serde_json_items(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn bulk_spans_are_the_items_serde_json_finds(
            items in proptest::collection::vec(json_value(), 0..6),
            pretty in proptest::prelude::any::<bool>(),
        ) {
            let array = serde_json::Value::Array(items);
            let body = if pretty {
                serde_json::to_string_pretty(&array).unwrap()
            } else {
                serde_json::to_string(&array).unwrap()
            };
            let found = parse_body_items(body.as_bytes());
            proptest::prop_assert!(found.is_some(), "{}", body);
            proptest::prop_assert_eq!(found, serde_json_items(body.as_bytes()));
        }

        /// A byte changed, dropped or added anywhere (structural bytes most of all) gives a
        /// body the bulk path takes exactly when serde_json takes it, with the same items.
        #[test]
        fn damaged_bulks_are_taken_exactly_when_serde_json_takes_them(
            items in proptest::collection::vec(json_value(), 1..5),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            edit in 0..3u8,
            byte in proptest::sample::select(b"[]{},:\"\\ 0a-.e\x01\xff".to_vec()),
        ) {
            let mut body = serde_json::to_vec(&serde_json::Value::Array(items)).unwrap();
            let at = at.index(body.len());
            match edit {
                0 => body[at] = byte,
                1 => { body.remove(at); }
                _ => body.insert(at, byte),
            }
            proptest::prop_assert_eq!(
                parse_body_items(&body),
                serde_json_items(&body),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
