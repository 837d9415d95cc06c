//! Mapping: turning any JSON payload into the canonical event.
//!
//! The engine knows only the [`Mapping`] trait. [`JsonataMapping`] implements it with the
//! `jsonata-core` crate (see ARCHITECTURE.md for why that crate and not `jsonata-rs`): the
//! expression is parsed once, when a connector is saved or loaded, into an AST that is
//! `Send + Sync` and shared; each item is evaluated by a fresh evaluator under limits of time,
//! depth, sequence length and output size.

mod direct;
mod document;
mod form;
mod projection;

pub use document::{Body, BodyError, BodyItem, Document, JsonSyntaxError};
pub use form::form_to_json;
pub use projection::Projection;

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorOptions};
use jsonata_core::parser;
use jsonata_core::value::JValue;
use serde::Serialize;
use std::fmt::{self, Debug};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The longest mapping expression accepted, in bytes.
pub const MAX_MAPPING_SOURCE_BYTES: usize = 64 * 1024;

/// Limits on one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct MappingLimits {
    pub timeout: Duration,
    pub max_depth: usize,
    pub max_output_bytes: usize,
    pub max_sequence_length: usize,
}

impl Default for MappingLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            max_depth: 1000,
            max_output_bytes: 64 * 1024,
            max_sequence_length: 100_000,
        }
    }
}

/// A mapping failed on one item. That item is rejected (`mapping_error`); the others go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct MappingError {
    /// The JSONata error code (`D1012`, `T2001`, ...) where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonata_code: Option<String>,
    pub message: String,
}

/// A mapping that does not compile, with where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} (at line {line}, column {column})")]
pub struct CompileError {
    pub message: String,
    /// Character offset of the fault in the expression, from 0.
    pub position: usize,
    pub line: usize,
    pub column: usize,
}

/// A compiled mapping: pure, shared by every request of its connector.
pub trait Mapping: Send + Sync + Debug {
    /// The expression as the admin wrote it.
    fn source(&self) -> &str;

    /// What the mapping can read of an item: the body parser builds only that.
    fn projection(&self) -> &Projection {
        static WHOLE: Projection = Projection::Whole;
        &WHOLE
    }

    /// Maps one item. Returns JSON `null` when the expression yields nothing.
    fn apply(
        &self,
        input: &Document,
        limits: &MappingLimits,
    ) -> Result<serde_json::Value, MappingError>;
}

/// A JSONata expression, compiled by `jsonata-core`.
#[derive(Clone)]
pub struct JsonataMapping {
    source: Arc<str>,
    ast: Arc<jsonata_core::ast::AstNode>,
    projection: Arc<Projection>,
    /// The source can call `$pad` (it has the word): only then is the bounded override
    /// registered, which costs a map insert per evaluation.
    may_call_pad: bool,
    /// The mapping evaluated without jsonata-core, when it is in the direct subset.
    direct: Option<Arc<direct::Template>>,
}

impl Debug for JsonataMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonataMapping")
            .field("source", &self.source)
            .finish()
    }
}

impl JsonataMapping {
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        if source.len() > MAX_MAPPING_SOURCE_BYTES {
            return Err(CompileError {
                message: format!("the mapping is longer than {MAX_MAPPING_SOURCE_BYTES} bytes"),
                position: 0,
                line: 1,
                column: 1,
            });
        }
        if source.trim().is_empty() {
            return Err(CompileError {
                message: "the mapping is empty".into(),
                position: 0,
                line: 1,
                column: 1,
            });
        }
        // jsonata-core's parser allocates its own stack for nesting, but we still refuse
        // absurd nesting before handing it the text.
        let ast = parser::parse(source).map_err(|e| compile_error(source, &e.to_string()))?;
        Ok(Self {
            source: source.into(),
            projection: Arc::new(Projection::of(&ast)),
            may_call_pad: source.contains("pad"),
            direct: direct::Template::compile(&ast).map(Arc::new),
            ast: Arc::new(ast),
        })
    }

    /// Evaluates against a raw value, for the conformance suite and tests: `bindings` are
    /// variables set before evaluation. The result is the JSON form of the value, `None` for
    /// JSONata's `undefined`.
    pub fn evaluate_with_bindings(
        &self,
        input: Option<&Document>,
        bindings: &[(String, serde_json::Value)],
        limits: &MappingLimits,
    ) -> Result<Option<serde_json::Value>, MappingError> {
        let mut context = Context::new();
        for (name, value) in bindings {
            context.bind(name.clone(), JValue::from(value.clone()));
        }
        let undefined = JValue::Undefined;
        let input = input.map(|d| &d.0).unwrap_or(&undefined);
        let result = self.run(context, input, limits)?;
        if matches!(result, JValue::Undefined) {
            return Ok(None);
        }
        bounded_json(&result, limits.max_output_bytes).map(Some)
    }

    fn run(
        &self,
        context: Context,
        input: &JValue,
        limits: &MappingLimits,
    ) -> Result<JValue, MappingError> {
        let options = EvaluatorOptions {
            timeout_ms: Some(limits.timeout.as_millis().max(1) as u64),
            cancel: None,
            max_stack_depth: Some(limits.max_depth),
            max_sequence_length: Some(limits.max_sequence_length),
        };
        let mut evaluator = Evaluator::with_options(context, options);
        let max_chars = limits.max_output_bytes;
        // $pad allocates its whole result in one built-in call, which the timeout (checked
        // between steps) cannot interrupt: `$pad("", 1e9)` would take seconds and a gigabyte.
        // Ours is the same function, refusing widths beyond the output limit.
        if self.may_call_pad {
            evaluator
                .register_fn_override("pad", move |args: &[JValue]| bounded_pad(args, max_chars))
                .expect("$pad is not a compiled built-in");
        }
        evaluator.evaluate(&self.ast, input).map_err(|e| {
            let message = e.to_string();
            MappingError {
                jsonata_code: jsonata_code(&message),
                message,
            }
        })
    }
}

impl Mapping for JsonataMapping {
    fn source(&self) -> &str {
        &self.source
    }

    fn projection(&self) -> &Projection {
        &self.projection
    }

    fn apply(
        &self,
        input: &Document,
        limits: &MappingLimits,
    ) -> Result<serde_json::Value, MappingError> {
        if let Some(direct) = &self.direct {
            if let Ok(result) = direct.evaluate(&input.0, limits.max_output_bytes) {
                return Ok(result);
            }
        }
        self.apply_with_jsonata_core(input, limits)
    }
}

impl JsonataMapping {
    /// Whether the mapping is in the subset evaluated without jsonata-core.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// [`Mapping::apply`] by jsonata-core alone, never by the direct evaluator: the reference
    /// the direct evaluator is tested against.
    pub fn apply_with_jsonata_core(
        &self,
        input: &Document,
        limits: &MappingLimits,
    ) -> Result<serde_json::Value, MappingError> {
        let result = match self.run(Context::new(), &input.0, limits) {
            // The timeout is wall-clock: on an overloaded machine a mapping of microseconds
            // can be descheduled past it. One more try tells that apart from a mapping that
            // really runs away (which then costs twice the limit: still bounded).
            Err(e) if e.jsonata_code.as_deref() == Some("D1012") => {
                self.run(Context::new(), &input.0, limits)?
            }
            other => other?,
        };
        if matches!(result, JValue::Undefined) {
            return Ok(serde_json::Value::Null);
        }
        bounded_json(&result, limits.max_output_bytes)
    }
}

/// jsonata-core's `$pad`, with a bound on the width.
fn bounded_pad(
    args: &[JValue],
    max_chars: usize,
) -> Result<JValue, jsonata_core::evaluator::EvaluatorError> {
    use jsonata_core::evaluator::EvaluatorError;
    if args.is_empty() || args.len() > 3 {
        return Err(EvaluatorError::EvaluationError(
            "pad() requires 2 or 3 arguments".into(),
        ));
    }
    let string = match &args[0] {
        JValue::String(s) => s.clone(),
        JValue::Null => return Ok(JValue::Null),
        JValue::Undefined => return Ok(JValue::Undefined),
        _ => {
            return Err(EvaluatorError::TypeError(
                "T0410: Argument 1 of function $pad does not match function signature".into(),
            ))
        }
    };
    let width = match args.get(1) {
        Some(JValue::Number(n)) => *n as i32,
        Some(JValue::Undefined) | None => return Ok(JValue::String(string)),
        _ => {
            return Err(EvaluatorError::TypeError(
                "T0410: Argument 2 of function $pad does not match function signature".into(),
            ))
        }
    };
    let pad: Vec<char> = match args.get(2) {
        Some(JValue::String(s)) if !s.is_empty() => s.chars().collect(),
        _ => vec![' '],
    };
    let wanted = width.unsigned_abs() as usize;
    if wanted > max_chars {
        return Err(EvaluatorError::EvaluationError(format!(
            "D3001: $pad to {wanted} characters is over the mapping's output limit of {max_chars} bytes"
        )));
    }
    let have = string.chars().count();
    if have >= wanted {
        return Ok(JValue::String(string));
    }
    let padding: String = (0..wanted - have).map(|i| pad[i % pad.len()]).collect();
    let result = if width < 0 {
        format!("{padding}{string}")
    } else {
        format!("{string}{padding}")
    };
    Ok(JValue::String(result.into()))
}

/// The result as a serde_json value, refused when its JSON text would pass `limit` bytes.
///
/// Most results are small: they are converted in one pass that also bounds their text's size
/// from above (strings as if every character were escaped). Only when that bound passes the
/// limit is the exact size counted, by serializing into a writer that keeps nothing.
fn bounded_json(value: &JValue, limit: usize) -> Result<serde_json::Value, MappingError> {
    let mut budget = TextBudget::new(limit);
    match convert_within(value, &mut budget, 0) {
        Some(converted) => Ok(converted),
        None => exactly_bounded_json(value, limit),
    }
}

/// An upper bound on the JSON text of a value being built, taken from a limit: a string's text
/// is at most 6 bytes a byte plus its quotes (every byte escaped), a number's 24. Each method
/// is `None` once the limit is passed. Shared by [`convert_within`] and the direct evaluator,
/// so that both bound a result the same way.
pub(super) struct TextBudget(isize);

impl TextBudget {
    pub(super) fn new(limit: usize) -> Self {
        Self(limit as isize)
    }

    fn take(&mut self, bytes: usize) -> Option<()> {
        self.0 -= bytes as isize;
        (self.0 >= 0).then_some(())
    }

    pub(super) fn null(&mut self) -> Option<()> {
        self.take(4)
    }

    pub(super) fn bool(&mut self) -> Option<()> {
        self.take(5)
    }

    pub(super) fn number(&mut self) -> Option<()> {
        self.take(24)
    }

    pub(super) fn string(&mut self, text: &str) -> Option<()> {
        self.take(text.len() * 6 + 2)
    }

    /// An object's key with its colon.
    pub(super) fn key(&mut self, key: &str) -> Option<()> {
        self.take(key.len() * 6 + 3)
    }

    /// Brackets and commas of an array or object of `items`.
    pub(super) fn container(&mut self, items: usize) -> Option<()> {
        self.take(2 + items)
    }
}

/// A number as jsonata-core's `Serialize` writes it: integers as integers, NaN and infinities
/// as null.
pub(super) fn json_number(n: f64) -> serde_json::Value {
    if !n.is_finite() {
        serde_json::Value::Null
    } else if n.fract() == 0.0 && n >= i64::MIN as f64 && n <= i64::MAX as f64 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Value::from(n)
    }
}

/// `value` as serde_json would serialize it (jsonata-core's `Serialize`: integers as
/// integers, NaN and infinities as null, functions as ""), its text's size taken from
/// `budget`. `None` as soon as the budget is spent, or past 64 levels of nesting (`$reduce`
/// can nest a result far deeper than any stack: the exact path has no recursion limit of its
/// own but grows its stack as it goes).
pub(super) fn convert_within(
    value: &JValue,
    budget: &mut TextBudget,
    depth: usize,
) -> Option<serde_json::Value> {
    use serde_json::Value;
    if depth > 64 {
        return None;
    }
    Some(match value {
        JValue::Null | JValue::Undefined => {
            budget.null()?;
            Value::Null
        }
        JValue::Bool(b) => {
            budget.bool()?;
            Value::Bool(*b)
        }
        JValue::Number(n) => {
            budget.number()?;
            json_number(*n)
        }
        JValue::String(s) => {
            budget.string(s)?;
            Value::String(s.to_string())
        }
        JValue::Array(items) => {
            budget.container(items.len())?;
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(convert_within(item, budget, depth + 1)?);
            }
            Value::Array(out)
        }
        JValue::Object(fields) => {
            budget.container(fields.len())?;
            let mut out = serde_json::Map::with_capacity(fields.len());
            for (key, item) in fields.iter() {
                budget.key(key)?;
                out.insert(key.clone(), convert_within(item, budget, depth + 1)?);
            }
            Value::Object(out)
        }
        JValue::Lambda(_) | JValue::Builtin { .. } | JValue::Regex { .. } => {
            budget.string("")?;
            Value::String(String::new())
        }
        // Values only Python builds: the exact path handles them.
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// [`bounded_json`] with the exact size: serializing into a writer that keeps nothing and
/// stops at the limit.
fn exactly_bounded_json(value: &JValue, limit: usize) -> Result<serde_json::Value, MappingError> {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len();
            if self.written > self.limit {
                return Err(std::io::Error::other("output too large"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    if let Err(e) = serde_json::to_writer(&mut counter, value) {
        let message = if counter.written > limit {
            format!("the mapping's output is larger than {limit} bytes")
        } else {
            format!("the mapping's output is not plain JSON: {e}")
        };
        return Err(MappingError {
            jsonata_code: None,
            message,
        });
    }
    // `to_value` (not `Value::from(&JValue)`) keeps integers integers.
    serde_json::to_value(value).map_err(|e| MappingError {
        jsonata_code: None,
        message: format!("the mapping's output is not plain JSON: {e}"),
    })
}

fn jsonata_code(message: &str) -> Option<String> {
    // Messages start with or contain the JSONata code, e.g. "Evaluation error: D1012: ...".
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| {
            word.len() == 5
                && word.as_bytes()[0].is_ascii_uppercase()
                && word[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
}

/// jsonata-core's parse errors carry no position. The position of a syntax error is where the
/// text stops being a valid prefix: every prefix before the fault fails only as "incomplete"
/// (unexpected end, unterminated string or comment), every prefix that includes it fails with
/// another error. That boundary is found by bisection over char boundaries.
fn compile_error(source: &str, message: &str) -> CompileError {
    let is_incomplete = |prefix: &str| match parser::parse(prefix) {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            text.contains("S0207")
                || text.contains("S0101")
                || text.contains("S0105")
                || text.contains("S0203")
                || text.contains("Eof")
                || text.contains("Unclosed comment")
        }
    };
    let boundaries: Vec<usize> = source
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(source.len()))
        .collect();
    let position = if !is_incomplete(source) {
        // Smallest prefix length that already shows the fault.
        let (mut low, mut high) = (0usize, boundaries.len() - 1);
        while low < high {
            let middle = (low + high) / 2;
            if is_incomplete(&source[..boundaries[middle]]) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        // The fault is the last character of that prefix.
        boundaries[low.saturating_sub(1)]
    } else {
        source.len()
    };
    let before = &source[..position];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    CompileError {
        message: message.to_owned(),
        position: before.chars().count(),
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(source: &str, input: &str) -> Result<serde_json::Value, MappingError> {
        let mapping = JsonataMapping::compile(source).unwrap();
        mapping.apply(
            &Document::parse(input.as_bytes()).unwrap(),
            &MappingLimits::default(),
        )
    }

    #[test]
    fn maps_and_keeps_integers() {
        let out = apply(
            r#"{"n": a, "f": b, "s": $string(a)}"#,
            r#"{"a": 42, "b": 1.5}"#,
        )
        .unwrap();
        assert_eq!(out, serde_json::json!({"n": 42, "f": 1.5, "s": "42"}));
    }

    #[test]
    fn undefined_result_is_null() {
        assert_eq!(apply("missing", "{}").unwrap(), serde_json::Value::Null);
    }

    #[test]
    fn compile_errors_say_where() {
        let err = JsonataMapping::compile("{ \"a\": foo bar }").unwrap_err();
        assert_eq!((err.line, err.column), (1, 12), "{err:?}");
        let err = JsonataMapping::compile("{\n  \"a\": (1 +\n").unwrap_err();
        assert_eq!(err.line, 3, "{err:?}");
        assert!(err.message.contains("S0207"), "{err:?}");
        assert!(JsonataMapping::compile("  ").is_err());
    }

    #[test]
    fn runaway_recursion_and_time_are_errors() {
        let err = apply("($f := function($n){ $f($n + 1) }; $f(0))", "{}").unwrap_err();
        assert!(err.jsonata_code.is_some(), "{err:?}");
        let err = apply("[1..100000000]", "{}").unwrap_err();
        assert!(err.jsonata_code.is_some(), "{err:?}");
    }

    #[test]
    fn output_size_is_bounded() {
        let err = apply("$pad('', 60000, 'x') & $pad('', 60000, 'y')", "{}").unwrap_err();
        assert!(err.message.contains("larger than"), "{err:?}");
        let err = apply("$pad('x', 1000000000)", "{}").unwrap_err();
        assert!(err.message.contains("output limit"), "{err:?}");
        assert_eq!(apply("$pad('ab', -5, '#')", "{}").unwrap(), "###ab");
        assert_eq!(apply("$pad('ab', 4)", "{}").unwrap(), "ab  ");
    }

    #[test]
    fn results_convert_as_serde_would() {
        let cases = [
            r#"{"i": 42, "neg": -7, "f": 1.5, "big": 1e300, "t": true, "n": null, "s": "a\"b"}"#,
            "[1, [2, [3]], {}, []]",
            "$reduce([1..200], function($acc, $v){ [$acc] }, [])",
            "{'f': function($x){ $x }, 'inf': 1/0 }",
        ];
        for source in cases {
            let mapping = JsonataMapping::compile(source).unwrap();
            let limits = MappingLimits::default();
            let result = mapping
                .run(Context::new(), &JValue::Undefined, &limits)
                .unwrap_or(JValue::Null);
            let exact = exactly_bounded_json(&result, limits.max_output_bytes);
            assert_eq!(
                bounded_json(&result, limits.max_output_bytes),
                exact,
                "{source}"
            );
        }
        // Near the limit the exact size decides: 30 KB of text that could be 180 KB escaped.
        let long = JValue::String("x".repeat(30_000).into());
        assert!(bounded_json(&long, 64 * 1024).is_ok());
        assert!(bounded_json(&long, 20_000).is_err());
    }

    #[test]
    fn bad_json_is_located() {
        let err = Document::parse(b"{\n \"a\": 1,,}").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(Document::parse(b"").is_err());
        assert!(Document::parse(&[b'['; 100_000]).is_err());
        assert!(Document::parse(b"1e400").is_err());
        assert!(Document::parse(b"\"\\ud800\"").is_err());
        assert!(Document::parse(b"{\"a\": \"\xff\"}").is_err());
        assert!(Document::parse(b"{\"a\": NaN}").is_err());
        assert!(Document::parse(b"{'a': 1}").is_err());
        assert!(Document::parse(b"{} x").is_err());
    }
}
