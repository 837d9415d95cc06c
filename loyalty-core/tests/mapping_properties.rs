//! Properties of the mapping's fast paths, for any document and any mapping of the shapes
//! connectors use: the projected parse and the direct evaluator give exactly what
//! jsonata-core gives on the whole document.

use loyalty_core::mapping::{Document, JsonataMapping, Mapping, MappingLimits};
use proptest::prelude::*;
use serde_json::Value;

/// Field names shared by documents and mappings, so that paths often hit.
const NAMES: &[&str] = &["a", "b", "c", "id", "e"];

fn name() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(NAMES).prop_map(str::to_owned)
}

fn path() -> BoxedStrategy<String> {
    prop::collection::vec(name(), 1..4)
        .prop_map(|names| names.join("."))
        .boxed()
}

/// Any JSON value, objects over `NAMES` (arrays included, so that paths meet them).
fn document_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::vec((name(), document_value()), 0..6)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// A JSONata expression: constructors, literals and paths, sometimes with the parts the
/// direct evaluator leaves to jsonata-core (predicates, functions, `$`).
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => path(),
        1 => Just("'text'".to_owned()),
        1 => Just("-2.5".to_owned()),
        1 => Just("true".to_owned()),
        1 => Just("null".to_owned()),
        1 => path().prop_map(|p| format!("{p}[0]")),
        1 => path().prop_map(|p| format!("$string({p})")),
        1 => path().prop_map(|p| format!("$count({p})")),
        1 => Just("$".to_owned()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec((name(), inner.clone()), 0..4).prop_map(|pairs| {
                let mut seen = Vec::new();
                let fields: Vec<String> = pairs
                    .into_iter()
                    .filter(|(key, _)| {
                        let fresh = !seen.contains(key);
                        seen.push(key.clone());
                        fresh
                    })
                    .map(|(key, value)| format!("\"{key}\": {value}"))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }),
            prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fast_paths_change_no_result(source in expression(), input in document()) {
        let mapping = JsonataMapping::compile(&source).unwrap();
        let text = input.to_string();
        let limits = MappingLimits::default();
        let whole = Document::parse(text.as_bytes()).unwrap();
        let reference = mapping.apply_with_jsonata_core(&whole, &limits);
        let projected = Document::parse_projected(text.as_bytes(), mapping.projection()).unwrap();
        // `apply` takes the direct evaluator where it can, on the projected document.
        let fast = mapping.apply(&projected, &limits);
        prop_assert_eq!(&fast, &reference, "{} on {}", source, text);
    }
}

#[test]
fn the_seed_mapping_is_direct() {
    let mapping = JsonataMapping::compile(loyalty_core::testing::SEED_MAPPING).unwrap();
    assert!(mapping.is_direct());
    assert!(!JsonataMapping::compile("{'a': $string(b)}")
        .unwrap()
        .is_direct());
}

#[test]
fn large_results_are_measured_exactly() {
    let mapping = JsonataMapping::compile("{'a': a, 'b': [b]}").unwrap();
    let limits = MappingLimits::default();
    // 30 KB of text that could be 180 KB escaped: the direct evaluator's bound passes the
    // limit, jsonata-core's exact count does not.
    let text = serde_json::json!({"a": "x".repeat(30_000), "b": 1}).to_string();
    let document = Document::parse_projected(text.as_bytes(), mapping.projection()).unwrap();
    let mapped = mapping.apply(&document, &limits).unwrap();
    assert_eq!(mapped["a"].as_str().map(str::len), Some(30_000));
    let text = serde_json::json!({"a": "x".repeat(70_000)}).to_string();
    let document = Document::parse_projected(text.as_bytes(), mapping.projection()).unwrap();
    let err = mapping.apply(&document, &limits).unwrap_err();
    assert!(err.message.contains("larger than"), "{err:?}");
}
