//! The official JSONata test suite, run through the mapping layer ([`JsonataMapping`]), exactly as
//! the engine uses it: output through serde_json, limits on.
//!
//! The suite lives in `../shared/jsonata-test-suite` beside the project's root (override with the
//! `JSONATA_TEST_SUITE` environment variable); its format is in its `TESTSUITE.md`. A missing
//! suite is a failure, never a skip.
//!
//! Scoring is strict: a case passes when our result equals the expected one (numbers as f64 with a
//! tiny relative tolerance, `unordered` results as multisets), when `undefinedResult` is expected
//! and we return nothing, or when an error `code` is expected and we fail with that code. A panic
//! is a failure, counted apart.

use loyalty_core::mapping::{Document, JsonataMapping, Mapping, MappingLimits};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases that must pass, strict. Measured on 2026-11-26 with jsonata-core 2.2.13: 1680 / 1686,
/// the same in debug and release. The count may only go up: raise it when the engine gets
/// better, never lower it. The six that fail:
/// - tail-recursion/case002, case005: the case's `depth` becomes `MappingLimits::max_depth`,
///   which jsonata-core enforces with D1011; the suite expects U1001, the code of jsonata-js's
///   test-runner guard (and jsonata-core counts depth in other units anyway);
/// - tail-recursion/case006: an endless tail call runs in constant stack until the 1 s
///   `timelimit` (D1012), where the suite expects the runner's U1001;
/// - comments/case002: an unclosed comment fails without the code S0106;
/// - function-encodeUrl/case002, function-encodeUrlComponent/case002: the expression holds a lone
///   surrogate, which no Rust string can; re-escaped (see `read_json`), jsonata-core's lexer
///   refuses it with S0104 where D3140 is expected.
const FLOOR: usize = 1680;

/// Cases in the suite (jsonata-js v2.2.2). A different number means a different or partial suite.
const SUITE_CASES: usize = 1686;

/// Limits for a case that sets none of its own: generous, the suite is not hostile.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Above jsonata-core's built-in limit (30,000 levels), so that limit is the one that holds.
const MAX_DEPTH: usize = 100_000;
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
const MAX_SEQUENCE_LENGTH: usize = 100_000_000;

/// Relative tolerance for comparing numbers.
const TOLERANCE: f64 = 1e-12;

enum Expected {
    Result(Value),
    Undefined,
    Code(String),
}

struct Case {
    /// `group/caseNNN` or `group/caseNNN[i]`.
    name: String,
    group: String,
    expr: Result<String, String>,
    input: Option<Value>,
    bindings: Vec<(String, Value)>,
    expected: Result<Expected, String>,
    unordered: bool,
    limits: MappingLimits,
}

enum Outcome {
    Pass,
    Fail(String),
    Panic(String),
}

fn suite_dir() -> PathBuf {
    match std::env::var_os("JSONATA_TEST_SUITE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/jsonata-test-suite"),
    }
}

#[test]
fn official_jsonata_suite() {
    let dir = suite_dir();
    assert!(
        dir.join("groups").is_dir() && dir.join("datasets").is_dir(),
        "the JSONata test suite is not at {} (expected `groups/` and `datasets/` there): \
         it belongs in ../shared/jsonata-test-suite beside the project's root, or set \
         JSONATA_TEST_SUITE to its folder",
        dir.display()
    );

    let cases = load_cases(&dir);

    // A panic is caught and tallied; keep the default hook from printing each one.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut results = Vec::with_capacity(cases.len());
    for case in &cases {
        let case_started = Instant::now();
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| run_case(case))) {
            Ok(outcome) => outcome,
            Err(payload) => Outcome::Panic(panic_message(payload.as_ref())),
        };
        results.push((case, outcome, case_started.elapsed()));
    }
    let elapsed = started.elapsed();
    panic::set_hook(hook);

    let total = results.len();
    let passed = results
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Pass))
        .count();
    let panics = results
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Panic(_)))
        .count();

    let mut per_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (case, outcome, _) in &results {
        let entry = per_group.entry(&case.group).or_default();
        entry.1 += 1;
        if !matches!(outcome, Outcome::Pass) {
            entry.0 += 1;
        }
    }
    let mut worst: Vec<_> = per_group.iter().filter(|(_, (f, _))| *f > 0).collect();
    worst.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));

    eprintln!(
        "JSONata suite ({}): {passed} / {total} passed, {} failed, {panics} panics, in {:.1?}",
        dir.display(),
        total - passed,
        elapsed
    );
    eprintln!("failures per group (worst first):");
    for (group, (failed, count)) in worst.iter().take(15) {
        eprintln!("  {group:<32} {failed:>3} / {count}");
    }
    eprintln!("failing cases:");
    for (case, outcome, _) in &results {
        match outcome {
            Outcome::Pass => {}
            Outcome::Fail(why) => eprintln!("  {}: {}", case.name, why),
            Outcome::Panic(why) => eprintln!("  {}: PANIC {}", case.name, clip(why)),
        }
    }
    let mut slowest: Vec<_> = results.iter().map(|(c, _, t)| (*t, &c.name)).collect();
    slowest.sort_by_key(|&(time, _)| std::cmp::Reverse(time));
    eprintln!("slowest cases:");
    for (time, name) in slowest.iter().take(5) {
        eprintln!("  {name}: {time:.1?}");
    }

    assert_eq!(
        total,
        SUITE_CASES,
        "the suite at {} does not hold the expected number of cases",
        dir.display()
    );
    // None panicked on 2026-11-26 with jsonata-core 2.2.13.
    assert_eq!(panics, 0, "cases panicked (see the list above)");
    assert!(
        passed >= FLOOR,
        "{passed} / {total} cases passed; the floor is {FLOOR}"
    );
}

fn run_case(case: &Case) -> Outcome {
    let expected = match &case.expected {
        Ok(expected) => expected,
        Err(why) => return Outcome::Fail(why.clone()),
    };
    let expr = match &case.expr {
        Ok(expr) => expr,
        Err(why) => return Outcome::Fail(why.clone()),
    };
    let mapping = match JsonataMapping::compile(expr) {
        Ok(mapping) => mapping,
        Err(e) => {
            return match expected {
                Expected::Code(code) if e.message.contains(code.as_str()) => Outcome::Pass,
                _ => Outcome::Fail(format!(
                    "expected {}, compile error: {}",
                    describe(expected),
                    clip(&e.message)
                )),
            }
        }
    };
    let input = case.input.clone().map(Document::from_json);
    let got = mapping.evaluate_with_bindings(input.as_ref(), &case.bindings, &case.limits);
    let pass = match (expected, &got) {
        (Expected::Result(want), Ok(Some(got))) => {
            if case.unordered {
                same_members(want, got)
            } else {
                json_eq(want, got)
            }
        }
        (Expected::Undefined, Ok(None)) => true,
        (Expected::Code(code), Err(e)) => {
            e.jsonata_code.as_deref() == Some(code.as_str()) || e.message.contains(code.as_str())
        }
        _ => false,
    };
    if pass {
        return Outcome::Pass;
    }
    let got = match got {
        Ok(Some(value)) => clip(&value.to_string()),
        Ok(None) => "undefined".into(),
        Err(e) => format!("error {}", clip(&e.message)),
    };
    Outcome::Fail(format!("expected {}, got {got}", describe(expected)))
}

fn describe(expected: &Expected) -> String {
    match expected {
        Expected::Result(value) => clip(&value.to_string()),
        Expected::Undefined => "undefined".into(),
        Expected::Code(code) => format!("error {code}"),
    }
}

fn clip(text: &str) -> String {
    const MAX: usize = 160;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".into()
    }
}

/// JSON equality, numbers compared as f64 with a tiny relative tolerance.
fn json_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= TOLERANCE * a.abs().max(b.abs()),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| json_eq(a, b)))
        }
        _ => want == got,
    }
}

/// Equality of arrays as multisets (the suite's `unordered`).
fn same_members(want: &Value, got: &Value) -> bool {
    let (Value::Array(want), Value::Array(got)) = (want, got) else {
        return json_eq(want, got);
    };
    if want.len() != got.len() {
        return false;
    }
    let mut used = vec![false; got.len()];
    want.iter().all(|w| {
        let found = got
            .iter()
            .enumerate()
            .position(|(i, g)| !used[i] && json_eq(w, g));
        found.map(|i| used[i] = true).is_some()
    })
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut datasets: HashMap<String, Result<Value, String>> = HashMap::new();
    let mut cases = Vec::new();
    for group_dir in sorted_entries(&dir.join("groups")) {
        if !group_dir.is_dir() {
            continue;
        }
        let group = file_name(&group_dir);
        for file in sorted_entries(&group_dir) {
            if file.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let base = format!("{group}/{stem}");
            match read_json(&file) {
                Ok(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let name = format!("{base}[{i}]");
                        cases.push(make_case(
                            dir,
                            &group_dir,
                            &group,
                            name,
                            item,
                            &mut datasets,
                        ));
                    }
                }
                Ok(item) => {
                    cases.push(make_case(
                        dir,
                        &group_dir,
                        &group,
                        base,
                        &item,
                        &mut datasets,
                    ));
                }
                // An unreadable file counts as one failing case.
                Err(why) => cases.push(Case {
                    name: base,
                    group: group.clone(),
                    expr: Err(why.clone()),
                    input: None,
                    bindings: Vec::new(),
                    expected: Err(why),
                    unordered: false,
                    limits: limits(&Map::new()),
                }),
            }
        }
    }
    cases
}

fn make_case(
    dir: &Path,
    group_dir: &Path,
    group: &str,
    name: String,
    case: &Value,
    datasets: &mut HashMap<String, Result<Value, String>>,
) -> Case {
    let empty = Map::new();
    let fields = case.as_object().unwrap_or(&empty);
    let expr = match (fields.get("expr"), fields.get("expr-file")) {
        (Some(Value::String(expr)), _) => Ok(expr.clone()),
        (_, Some(Value::String(file))) => std::fs::read_to_string(group_dir.join(file))
            .map_err(|e| format!("cannot read expr-file {file}: {e}")),
        _ => Err("the case has no expr".to_owned()),
    };
    // `data` wins, even when null; otherwise a named dataset; `dataset: null` is undefined.
    let mut input_error = None;
    let input = match (fields.get("data"), fields.get("dataset")) {
        (Some(data), _) => Some(data.clone()),
        (None, Some(Value::String(set))) => {
            let loaded = datasets
                .entry(set.clone())
                .or_insert_with(|| read_json(&dir.join("datasets").join(format!("{set}.json"))));
            match loaded {
                Ok(value) => Some(value.clone()),
                Err(why) => {
                    input_error = Some(why.clone());
                    None
                }
            }
        }
        _ => None,
    };
    let bindings = fields
        .get("bindings")
        .and_then(Value::as_object)
        .map(|b| b.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let code = fields.get("code").or_else(|| {
        fields
            .get("error")
            .and_then(|e| e.as_object())
            .and_then(|e| e.get("code"))
    });
    let expected = if let Some(why) = input_error {
        Err(why)
    } else if fields.get("undefinedResult") == Some(&Value::Bool(true)) {
        Ok(Expected::Undefined)
    } else if let Some(result) = fields.get("result") {
        Ok(Expected::Result(result.clone()))
    } else if let Some(Value::String(code)) = code {
        Ok(Expected::Code(code.clone()))
    } else {
        Err("the case expects nothing (no result, undefinedResult or code)".to_owned())
    };
    Case {
        name,
        group: group.to_owned(),
        expr,
        input,
        bindings,
        expected,
        unordered: fields.get("unordered") == Some(&Value::Bool(true)),
        limits: limits(fields),
    }
}

/// The suite's limits, where a case sets them, else generous ones.
fn limits(fields: &Map<String, Value>) -> MappingLimits {
    let timeout = fields
        .get("timelimit")
        .and_then(Value::as_u64)
        .map_or(TIMEOUT, Duration::from_millis);
    let max_depth = fields
        .get("depth")
        .and_then(Value::as_u64)
        .map_or(MAX_DEPTH, |d| d as usize);
    MappingLimits {
        timeout,
        max_depth,
        max_output_bytes: MAX_OUTPUT_BYTES,
        max_sequence_length: MAX_SEQUENCE_LENGTH,
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

/// Reads a JSON file. JSON allows lone UTF-16 surrogates (`"\uD800"`), which no Rust string can
/// hold; where they make a file unreadable, each is re-escaped (`"\\uD800"`) so that an
/// expression receives the JSONata escape for the same character, as jsonata-js would see it.
fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .or_else(|first| {
            let escaped = escape_lone_surrogates(&text);
            if escaped == text {
                Err(first)
            } else {
                serde_json::from_str(&escaped)
            }
        })
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

fn escape_lone_surrogates(text: &str) -> String {
    fn hex4(bytes: &[u8]) -> Option<u32> {
        let digits = std::str::from_utf8(bytes.get(..4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let start = text.len() - rest.len() + at;
        let escape = &bytes[start..];
        let step = if escape.get(1) == Some(&b'u') {
            match hex4(&escape[2..]) {
                // A pair: one character, kept as it is.
                Some(0xD800..=0xDBFF)
                    if escape.get(6..8) == Some(b"\\u".as_slice())
                        && hex4(&escape[8..])
                            .is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) =>
                {
                    12
                }
                Some(0xD800..=0xDFFF) => {
                    out.push('\\');
                    6
                }
                Some(_) => 6,
                None => 2,
            }
        } else {
            1 + rest[at + 1..].chars().next().map_or(0, char::len_utf8)
        };
        out.push_str(&text[start..start + step]);
        rest = &text[start + step..];
    }
    out.push_str(rest);
    out
}

/// The body parser builds only what a mapping can read (`Projection`). Over every case of the
/// suite that has an input, the expression must give the same result on the projected
/// document as on the whole one.
#[test]
fn projection_changes_no_result() {
    let dir = suite_dir();
    assert!(
        dir.join("groups").is_dir(),
        "the JSONata test suite is not at {} (see official_jsonata_suite)",
        dir.display()
    );
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let (mut compared, mut projected, mut mismatches) = (0, 0, Vec::new());
    for case in load_cases(&dir) {
        let (Ok(expr), Some(input)) = (&case.expr, &case.input) else {
            continue;
        };
        let Ok(mapping) = JsonataMapping::compile(expr) else {
            continue;
        };
        let text = input.to_string();
        let (Ok(whole), Ok(part)) = (
            Document::parse(text.as_bytes()),
            Document::parse_projected(text.as_bytes(), mapping.projection()),
        ) else {
            continue;
        };
        compared += 1;
        if !mapping.projection().is_whole() {
            projected += 1;
        }
        let run = |document: &Document| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                mapping.evaluate_with_bindings(Some(document), &case.bindings, &case.limits)
            }))
        };
        let same = match (run(&whole), run(&part)) {
            (Ok(Ok(a)), Ok(Ok(b))) => match (&a, &b) {
                (Some(a), Some(b)) => json_eq(a, b),
                (None, None) => true,
                _ => false,
            },
            (Ok(Err(a)), Ok(Err(b))) => a.jsonata_code == b.jsonata_code,
            // A timeout is the machine's, not the document's.
            (Ok(Err(e)), _) | (_, Ok(Err(e))) if e.jsonata_code.as_deref() == Some("D1012") => true,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !same {
            mismatches.push(format!("{}: {}", case.name, clip(expr)));
        }
    }
    panic::set_hook(hook);
    eprintln!(
        "projection: {compared} cases compared, {projected} read part of their input, {} differ",
        mismatches.len()
    );
    for mismatch in &mismatches {
        eprintln!("  {mismatch}");
    }
    assert!(compared > 1000, "only {compared} cases could be compared");
    assert!(mismatches.is_empty(), "results changed under projection");
}
