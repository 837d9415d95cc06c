//! Fuzzes the JSONata mapping engine as a connector uses it: the first line of the input is
//! the expression, compiled with `JsonataMapping::compile` (including the error-position search
//! when it does not compile); if it compiles it is applied with the default limits to a fixed
//! small document and, when the rest of the input is a JSON document, to that document too.
//! A successful result goes on into `event::validate`, as in the ingestion path.
//!
//! Differentially, the fast paths must not change a result: the document parsed with the
//! mapping's projection (only the fields it can read) and evaluated by `apply` (the direct
//! evaluator where the mapping allows it) gives what jsonata-core gives on the whole document.
//!
//! Any panic (or a hang past libFuzzer's `-timeout`) is a finding: an admin can save any
//! mapping, and the payload comes from outside.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loyalty_core::connector::EventType;
use loyalty_core::event;
use loyalty_core::mapping::{Document, JsonataMapping, Mapping, MappingLimits};

const FIXED_DOCUMENT: &[u8] = br#"{
  "event": "Course Clicked",
  "userId": "u-1",
  "email": "Ann@Example.com",
  "timestamp": "2026-11-26T10:00:00Z",
  "properties": {"title": "Intro", "price": 19.99, "qty": 2, "tags": ["a", "b"], "ok": true, "n": null},
  "items": [{"sku": "A", "price": 10, "quantity": 2}, {"sku": "B", "price": 2.5, "quantity": 1}]
}"#;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(source) = std::str::from_utf8(first) else {
        return;
    };
    let mapping = match JsonataMapping::compile(source) {
        Ok(mapping) => mapping,
        Err(error) => {
            // The reported position must be inside the source.
            assert!(
                error.position <= source.chars().count(),
                "compile error position {} beyond the source ({} chars): {error:?}",
                error.position,
                source.chars().count()
            );
            assert!(error.line >= 1 && error.column >= 1, "{error:?}");
            return;
        }
    };
    assert_eq!(mapping.source(), source);
    let limits = MappingLimits::default();
    let received = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();

    let whole = loyalty_core::mapping::Projection::Whole;
    let mut documents = vec![(
        Document::parse(FIXED_DOCUMENT).expect("fixed document parses"),
        Document::parse_projected(FIXED_DOCUMENT, mapping.projection())
            .expect("fixed document parses"),
    )];
    let body = Document::parse_body(rest, 1000, &whole);
    let projected = Document::parse_body(rest, 1000, mapping.projection());
    assert_eq!(
        body.as_ref().err(),
        projected.as_ref().err(),
        "the projected parse judged the body differently"
    );
    if let (Ok(body), Ok(projected)) = (body, projected) {
        documents.extend(
            body.items
                .into_iter()
                .zip(projected.items)
                .take(4)
                .map(|(item, part)| (item.document, part.document)),
        );
    }
    for (document, part) in &documents {
        let reference = mapping.apply_with_jsonata_core(document, &limits);
        let fast = mapping.apply(part, &limits);
        // A timeout is the machine's; a result that met one on one side only is not compared.
        let timed_out = |r: &Result<serde_json::Value, loyalty_core::mapping::MappingError>| {
            matches!(r, Err(e) if e.jsonata_code.as_deref() == Some("D1012"))
        };
        if !timed_out(&reference) && !timed_out(&fast) {
            assert_eq!(fast, reference, "the fast paths changed the result of {source:?}");
        }
        if let Ok(mapped) = mapping.apply(document, &limits) {
            let text = serde_json::to_string(&mapped).expect("serde_json value serialises");
            assert!(
                text.len() <= limits.max_output_bytes + 16,
                "mapping output of {} bytes passed the {} byte limit",
                text.len(),
                limits.max_output_bytes
            );
            let _ = event::validate(&mapped, EventType::CustomBasic, received, 30);
            let _ = event::validate(&mapped, EventType::EcommercePurchase, received, 30);
        }
    }
});
