//! The document's schemas: what each body may be and what each answer is, as exactly as JSON
//! Schema can say it. The core's types carry no schema derives, so they are written here, next
//! to the checks they restate; `scripts/schemathesis.sh` checks them against the server.
//!
//! What JSON Schema cannot say is in the descriptions: a mapping must compile; a rule's
//! connector must exist in the program, and a rule that reads purchase fields needs an
//! `ecommerce.purchase` connector; `between` needs `min <= max`; conditions nest at most 16
//! deep with at most 256 leaves; tokens and secrets are limited in bytes (512), which the
//! lengths below count in characters.

use serde_json::{json, Value};

/// A character that Rust's `char::is_whitespace` does not take for white space: a name must
/// hold one (names are trimmed, and must not be empty once trimmed).
const NOT_WHITE_SPACE: &str =
    "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// An HTTP header name (RFC 9110 token), with white space around it trimmed.
const HEADER_NAME: &str =
    "^[\\t\\n\\u000b\\f\\r ]*[A-Za-z0-9!#$%&'*+.^_`|~-]+[\\t\\n\\u000b\\f\\r ]*$";

/// A string with a line feed: patterns anchored with `$` are refused one more explicitly,
/// since some regex dialects let `$` match before a final line feed.
fn line_feed() -> Value {
    json!({"type": "string", "pattern": "\\n"})
}

/// Standard base64 with its padding and canonical last symbol, after an optional `whsec_`.
const STANDARD_WEBHOOKS_SECRET: &str = "^(whsec_)?(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$";

/// A webhook secret: `whsec_` and the canonical base64 of 24 to 64 bytes (8 to 21 groups of
/// four symbols, then maybe a last group of one or two bytes, 64 bytes at most).
const WEBHOOK_SECRET: &str = "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,21}|(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/][AQgw]==)$";

/// The mapping of the examples: an article read on a website.
const EXAMPLE_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [{"type": "null"}, schema]})
}

/// A JSON value with no NUL character (`\u0000`) in any string or key: no store can keep
/// one (PostgreSQL's text cannot), so a body that is stored must not hold one anywhere, its
/// unknown members included.
fn no_nul() -> Value {
    json!({"not": {"type": "string", "pattern": "\\u0000"},
           "propertyNames": {"not": {"pattern": "\\u0000"}},
           "additionalProperties": reference("NoNul"),
           "items": reference("NoNul")})
}

/// A body that is stored: its `schema`, and no NUL character anywhere.
fn stored(mut schema: Value) -> Value {
    schema["allOf"] = json!([reference("NoNul")]);
    schema
}

fn name(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_WHITE_SPACE, "description": description})
}

/// Why an admin changed points: not empty, nor only white space.
fn reason() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 500, "pattern": NOT_WHITE_SPACE, "description": "why, 1 to 500 characters (trimmed)"})
}

/// A JSONata expression: not empty, nor only white space.
fn mapping(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "pattern": NOT_WHITE_SPACE, "description": description})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// 0 to 10^12, the most one rule awards for one event.
fn points_count() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 1_000_000_000_000_i64})
}

/// A text value a condition compares with: a string (numbers and booleans are taken as
/// their text).
fn text_value() -> Value {
    json!({"oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 1024},
        {"type": ["number", "boolean"]}
    ]})
}

fn text_values() -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": ["string", "number", "boolean"]}})
}

fn finite_number() -> Value {
    json!({"type": "number"})
}

/// One operator of a test, with the operands it reads (`required`) and their schemas.
fn operator(op: &str, operands: Value) -> Value {
    let required: Vec<&String> = operands
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let mut properties = operands.clone();
    properties["op"] = json!({"const": op});
    let mut required: Vec<Value> = required.into_iter().map(|k| json!(k)).collect();
    required.push(json!("op"));
    json!({"required": required, "properties": properties})
}

/// The operator and operands of a test on text (a tag, the currency). `in` and `notIn` read
/// `values`, or `value` when there is no `values`.
fn text_test() -> Value {
    let mut tests: Vec<Value> = ["eq", "neq", "contains", "startsWith"]
        .iter()
        .map(|op| operator(op, json!({"value": reference("TextValue")})))
        .collect();
    for op in ["in", "notIn"] {
        tests.push(operator(op, json!({"values": reference("TextValues")})));
        let mut by_value = operator(op, json!({"value": reference("TextValues")}));
        by_value["not"] = json!({"required": ["values"]});
        tests.push(by_value);
    }
    tests.push(operator("exists", json!({})));
    tests.push(operator("notExists", json!({})));
    json!({"anyOf": tests})
}

/// The operator and operands of a test on a number (a counter, the amount, the item count).
fn number_test() -> Value {
    let mut tests: Vec<Value> = ["eq", "neq", "lt", "lte", "gt", "gte"]
        .iter()
        .map(|op| operator(op, json!({"value": finite_number()})))
        .collect();
    tests.push(operator(
        "between",
        json!({"min": finite_number(), "max": finite_number()}),
    ));
    tests.push(operator("exists", json!({})));
    tests.push(operator("notExists", json!({})));
    json!({"anyOf": tests})
}

/// Schemas that apply in order: the first whose key an object has decides what it is (the
/// keys of the others are then ignored).
fn first_key_decides(cases: Vec<(&str, Value)>) -> Value {
    let mut earlier: Vec<Value> = Vec::new();
    let mut branches = Vec::new();
    for (key, schema) in cases {
        let mut branch = json!({"allOf": [{"required": [key]}, schema]});
        if !earlier.is_empty() {
            branch["not"] = json!({"anyOf": earlier.clone()});
        }
        earlier.push(json!({"required": [key]}));
        branches.push(branch);
    }
    json!({"type": "object", "anyOf": branches})
}

/// A condition: the first of `all`, `any`, `tag`, `counter`, `field`, `item` that it has
/// decides what it is.
fn condition() -> Value {
    let item = json!({"properties": {"item": {
        "type": "object", "minProperties": 1, "propertyNames": {"enum": ["sku", "category", "name"]},
        "additionalProperties": {"oneOf": [{"type": "string"}, reference("TextValues")]}}}});
    let field = json!({"anyOf": [
        {"allOf": [{"properties": {"field": {"const": "currency"}}}, reference("TextTest")]},
        {"allOf": [{"properties": {"field": {"enum": ["amount", "itemCount"]}}}, reference("NumberTest")]}]});
    let counter = json!({"allOf": [{"properties": {"counter": reference("TextValue")}}, reference("NumberTest")]});
    let tag =
        json!({"allOf": [{"properties": {"tag": reference("TextValue")}}, reference("TextTest")]});
    let mut schema = first_key_decides(vec![
        (
            "all",
            json!({"properties": {"all": {"type": "array", "items": reference("Condition")}}}),
        ),
        (
            "any",
            json!({"properties": {"any": {"type": "array", "minItems": 1, "items": reference("Condition")}}}),
        ),
        ("tag", tag),
        ("counter", counter),
        ("field", field),
        ("item", item),
    ]);
    schema["description"] = json!("{all: [...]} or {any: [...]} (nestable, at most 16 deep and 256 leaves), or a leaf on a tag, a counter, a purchase field or an item; the first of these keys it has decides");
    schema
}

fn points() -> Value {
    let per = json!({"type": ["number", "null"], "exclusiveMinimum": 0, "default": 1});
    let mut schema = first_key_decides(vec![
        ("fixed", json!({"properties": {"fixed": points_count()}})),
        (
            "perCounter",
            json!({"properties": {"perCounter": {"type": "object", "required": ["counter", "points"],
            "properties": {"counter": reference("TextValue"), "points": points_count(), "per": per.clone()}}}}),
        ),
        (
            "perAmount",
            json!({"properties": {"perAmount": {"type": "object", "required": ["points"],
            "properties": {"points": points_count(), "per": per}}}}),
        ),
    ]);
    schema["description"] = json!("{fixed: N}, {perCounter: {counter, points, per}} or, for purchases, {perAmount: {points, per}}; the first of these keys it has decides");
    schema
}

fn limit() -> Value {
    let mut schema = first_key_decides(vec![
        ("count", json!({"properties": {"count": points_count()}})),
        ("points", json!({"properties": {"points": points_count()}})),
    ]);
    schema["required"] = json!(["per"]);
    schema["properties"] = json!({"per": {"enum": ["day", "week", "month", "year", "lifetime"]}});
    schema
}

fn auth_spec() -> Value {
    let token = json!({"type": ["string", "null"], "minLength": 1, "maxLength": 512, "description": "1 to 512 bytes; generated when left out (shown once)"});
    let header = |default: &str| json!({"type": ["string", "null"], "maxLength": 128, "pattern": HEADER_NAME, "default": default});
    let secrets = |secret: Value| {
        json!({"type": ["array", "null"], "minItems": 1, "maxItems": 10, "items": secret,
               "description": "any of them is accepted (rotation); generated when left out (shown once)"})
    };
    let scheme = |kind: &str, properties: Value| {
        let mut properties = properties;
        properties["type"] = json!({"const": kind});
        json!({"type": "object", "required": ["type"], "additionalProperties": false, "properties": properties})
    };
    let header_or_null =
        || json!({"type": ["string", "null"], "maxLength": 128, "pattern": HEADER_NAME});
    let tolerance =
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": 86400, "default": 300});
    let sender_secrets =
        json!({"secrets": secrets(json!({"type": "string", "minLength": 1, "maxLength": 512}))});
    let mut timestamped = sender_secrets.clone();
    timestamped["toleranceSeconds"] = tolerance.clone();
    json!({"oneOf": [
        scheme("queryToken", json!({"param": {"type": ["string", "null"], "maxLength": 128, "pattern": NOT_WHITE_SPACE, "default": "token"}, "token": token})),
        scheme("headerToken", json!({"header": header("X-Authorization"), "token": token})),
        scheme("hubSignature", json!({"header": header("X-Hub-Signature-256"),
            "algorithm": {"type": ["string", "null"], "pattern": "^[sS][hH][aA](1|256|512)$", "not": line_feed(), "default": "sha256"},
            "encoding": {"type": ["string", "null"], "pattern": "^([hH][eE][xX]|[bB][aA][sS][eE]64)$", "not": line_feed(), "default": "hex"},
            "prefix": {"type": ["string", "null"], "maxLength": 64, "pattern": "^[!-~]*$", "not": line_feed(),
                "description": "written before the digest; `<algorithm>=` when left out, \"\" for none"},
            "deliveryIdHeader": header_or_null(),
            "secrets": secrets(json!({"type": "string", "minLength": 1, "maxLength": 512}))})),
        scheme("standardWebhooks", json!({
            "secrets": secrets(json!({"type": "string", "minLength": 1, "maxLength": 512, "pattern": STANDARD_WEBHOOKS_SECRET, "not": line_feed()})),
            "toleranceSeconds": tolerance.clone()})),
        scheme("github", sender_secrets.clone()),
        scheme("shopify", sender_secrets.clone()),
        scheme("typeform", sender_secrets.clone()),
        scheme("woocommerce", sender_secrets.clone()),
        scheme("segment", sender_secrets.clone()),
        scheme("stripe", timestamped.clone()),
        scheme("slack", timestamped.clone()),
        scheme("hubspot", timestamped.clone()),
        scheme("zendesk", timestamped)
    ]})
}

fn auth_view() -> Value {
    let scheme = |kind: &str, properties: Value, required: &[&str]| {
        let mut properties = properties;
        properties["type"] = json!({"const": kind});
        let mut required: Vec<&str> = required.to_vec();
        required.push("type");
        json!({"type": "object", "required": required, "additionalProperties": false, "properties": properties})
    };
    let token = json!({"type": "string", "description": "only when generated by this request"});
    let secrets = json!({"type": "array", "items": {"type": "string"}, "description": "only when generated by this request"});
    json!({"oneOf": [
        scheme("queryToken", json!({"param": {"type": "string"}, "token": token}), &["param"]),
        scheme("headerToken", json!({"header": {"type": "string"}, "token": token}), &["header"]),
        scheme("hubSignature", json!({"header": {"type": "string"}, "algorithm": {"enum": ["sha1", "sha256", "sha512"]},
            "encoding": {"enum": ["hex", "base64"]}, "prefix": {"type": "string"}, "deliveryIdHeader": {"type": "string"},
            "secretCount": {"type": "integer", "minimum": 0}, "secrets": secrets}), &["header", "algorithm", "encoding", "prefix", "secretCount"]),
        scheme("standardWebhooks", json!({"toleranceSeconds": {"type": "integer", "minimum": 1},
            "secretCount": {"type": "integer", "minimum": 0}, "secrets": secrets}), &["toleranceSeconds", "secretCount"]),
        {"type": "object", "required": ["type", "secretCount"], "additionalProperties": false, "properties": {
            "type": {"enum": ["github", "shopify", "typeform", "woocommerce", "segment"]},
            "secretCount": {"type": "integer", "minimum": 0}, "secrets": secrets}},
        {"type": "object", "required": ["type", "secretCount", "toleranceSeconds"], "additionalProperties": false, "properties": {
            "type": {"enum": ["stripe", "slack", "hubspot", "zendesk"]}, "toleranceSeconds": {"type": "integer", "minimum": 1},
            "secretCount": {"type": "integer", "minimum": 0}, "secrets": secrets}}
    ]})
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": properties})
}

fn list_of(item: &str) -> Value {
    object(
        &["items"],
        json!({"items": {"type": "array", "items": reference(item)}}),
    )
}

fn page_of(item: &str) -> Value {
    object(
        &["items", "nextCursor"],
        json!({"items": {"type": "array", "items": reference(item)},
               "nextCursor": {"type": ["string", "null"], "description": "pass back as cursor for the next page; null on the last"}}),
    )
}

fn status() -> Value {
    json!({"enum": ["accepted", "duplicate", "ignored", "rejected"]})
}

/// Every schema of the document, by name.
pub fn schemas() -> Value {
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    let boolean = json!({"type": "boolean"});
    let any = json!({});
    let program = json!({
        "id": string, "name": string, "defaultIdentifierKind": string,
        "enrollUnknownMembers": boolean, "createdAt": date_time(),
        "pointsExpiry": {"oneOf": [{"type": "null"}, object(&["afterDays"], json!({"afterDays": integer}))]}
    });
    let mut program_created = program.clone();
    program_created["adminToken"] =
        json!({"type": "string", "description": "shown only in this answer"});
    let program_fields = [
        "id",
        "name",
        "defaultIdentifierKind",
        "enrollUnknownMembers",
        "pointsExpiry",
        "createdAt",
    ];
    let mut created_fields = program_fields.to_vec();
    created_fields.push("adminToken");
    let article = json!({"eventId": "a-1", "timestamp": "2026-01-01T12:00:00Z", "profile": {"email": "ann@example.com"},
        "article": {"theme": "sport"}, "totalArticlesRead": 5});
    let item_error = object(
        &["code", "message"],
        json!({"code": string, "message": string, "path": string}),
    );
    let award = object(
        &["ruleId", "points"],
        json!({"ruleId": string, "points": integer}),
    );
    let trace_entry = object(
        &["ruleId", "ruleName", "fired", "points"],
        json!({"ruleId": string, "ruleName": string, "fired": boolean, "points": integer, "reason": string}),
    );
    let entry_kind = json!({"enum": ["award", "reversal", "adjustment", "expiry"]});
    let template_ids: Vec<&str> = loyalty_core::templates::all()
        .iter()
        .map(|t| t.id)
        .collect();
    let mut all = json!({
        "Problem": {"type": "object", "required": ["type", "title", "status", "code", "detail"], "properties": {
            "type": string, "title": string, "status": integer,
            "code": {"type": "string", "description": "Stable machine code: unauthorized, forbidden, not_found, method_not_allowed, bad_request, invalid_json, validation_failed, invalid_mapping, payload_too_large, batch_too_large, idempotency_conflict, nothing_to_reverse, rate_limited, database_unavailable, internal_error"},
            "detail": string, "path": string, "line": integer, "column": integer, "position": integer,
            "message": string, "items": integer, "limit": integer}},
        "IngestBody": {"description": "One event (a JSON object) or a bulk (an array of them). Any JSON is answered item by item: an item that is not an object is rejected in the answer."},
        "NoNul": no_nul(),
        "ProgramSpec": stored(json!({"type": "object", "required": ["name"], "properties": {
            "name": name("1 to 200 characters, not only white space (trimmed)"),
            "defaultIdentifierKind": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_.:-]{1,64}$", "not": {"anyOf": [{"const": "default"}, line_feed()]}, "default": "email"},
            "enrollUnknownMembers": {"type": ["boolean", "null"], "default": true},
            "pointsExpiry": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["afterDays"], "additionalProperties": false,
                "properties": {"afterDays": {"type": "integer", "minimum": 1, "maximum": 36600}}}],
                "description": "points of an award expire this many days after its event (null: never)"}}})),
        "Program": object(&program_fields, program),
        "ProgramCreated": object(&created_fields, program_created),
        "ProgramList": list_of("Program"),
        "ConnectorAuth": auth_spec(),
        "ConnectorSpec": stored(json!({"type": "object", "required": ["name", "eventType", "auth", "mapping"], "properties": {
            "name": name("1 to 200 characters, not only white space (trimmed)"),
            "eventType": {"enum": ["custom.basic", "ecommerce.purchase", "ecommerce.refund"]},
            "auth": reference("ConnectorAuth"),
            "mapping": mapping("A JSONata expression; one that does not compile is 422 invalid_mapping with its position"),
            "testMode": {"type": "boolean", "default": false},
            "maxEventAgeDays": {"type": ["integer", "null"], "minimum": 1, "maximum": 36600, "default": 30},
            "publicBaseUrl": {"type": ["string", "null"], "maxLength": 2048, "pattern": "^https?://[^?#\\s\\u0000-\\u001f\\u007f-\\u009f]*$", "not": line_feed(),
                "description": "the URL senders that sign it (HubSpot) post to, without the path; else the server's --public-base-url"}}})),
        "ConnectorCreation": {"oneOf": [reference("ConnectorSpecWithoutTemplate"), reference("ConnectorFromTemplate")]},
        "ConnectorFromTemplate": stored(json!({"type": "object", "required": ["template"], "properties": {
            "template": {"enum": template_ids, "description": "a template's id (GET /v1/templates); every field given beside it replaces the template's whole"},
            "name": {"oneOf": [{"type": "null"}, name("1 to 200 characters, not only white space (trimmed); the template's name when left out or null")]},
            "eventType": {"enum": ["custom.basic", "ecommerce.purchase", "ecommerce.refund", null]},
            "auth": {"oneOf": [{"type": "null"}, reference("ConnectorAuth")]},
            "mapping": {"oneOf": [{"type": "null"}, mapping("A JSONata expression; the template's when left out or null")]},
            "testMode": {"type": "boolean", "default": false},
            "maxEventAgeDays": {"type": ["integer", "null"], "minimum": 1, "maximum": 36600, "default": 30},
            "publicBaseUrl": {"type": ["string", "null"], "maxLength": 2048, "pattern": "^https?://[^?#\\s\\u0000-\\u001f\\u007f-\\u009f]*$", "not": line_feed()}}})),
        "TemplateList": list_of("Template"),
        "Template": object(&["id", "name", "sender", "eventType", "auth", "mapping", "samplePayload"], json!({
            "id": string, "name": string, "sender": string,
            "eventType": {"enum": ["custom.basic", "ecommerce.purchase", "ecommerce.refund"]},
            "auth": object(&["type"], json!({"type": string})), "mapping": string, "samplePayload": any})),
        "Connector": object(
            &["id", "programId", "name", "eventType", "auth", "mapping", "testMode", "maxEventAgeDays", "endpoint", "revision", "createdAt", "updatedAt"],
            json!({"id": string, "programId": string, "name": string, "eventType": {"enum": ["custom.basic", "ecommerce.purchase", "ecommerce.refund"]},
                "auth": auth_view(), "mapping": string, "testMode": boolean, "maxEventAgeDays": integer, "publicBaseUrl": string,
                "endpoint": string, "revision": integer, "createdAt": date_time(), "updatedAt": date_time()})),
        "ConnectorList": list_of("Connector"),
        "Condition": condition(),
        "TextTest": text_test(),
        "NumberTest": number_test(),
        "TextValue": text_value(),
        "TextValues": text_values(),
        "Points": points(),
        "RuleSpec": stored(json!({"type": "object", "required": ["name", "connectorId", "points"], "properties": {
            "name": name("1 to 200 characters, not only white space (trimmed)"),
            "connectorId": {"type": "string", "description": "a connector of this program; a rule that reads purchase fields needs an ecommerce.purchase connector"},
            "conditions": {"oneOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}, reference("Condition")], "description": "no conditions (null or {}) means always"},
            "points": reference("Points"),
            "limits": {"type": ["array", "null"], "maxItems": 10, "items": limit()},
            "priority": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX, "default": 0},
            "stopOtherRules": {"type": "boolean", "default": false},
            "pendingDays": {"type": ["integer", "null"], "minimum": 0, "maximum": 36600,
                "description": "awards count toward limits at once, and are spendable this many days after their event"},
            "activeFrom": nullable(date_time()), "activeUntil": nullable(date_time())}})),
        "Rule": object(
            &["id", "programId", "connectorId", "name", "conditions", "points", "limits", "priority", "stopOtherRules", "activeFrom", "activeUntil", "createdAt", "updatedAt"],
            json!({"id": string, "programId": string, "connectorId": string, "name": string,
                "conditions": {"description": "as written"}, "points": {"description": "as written"}, "limits": {"description": "as written"},
                "priority": integer, "stopOtherRules": boolean, "pendingDays": integer, "activeFrom": nullable(date_time()), "activeUntil": nullable(date_time()),
                "createdAt": date_time(), "updatedAt": date_time()})),
        "RuleList": list_of("Rule"),
        "Member": object(&["id", "identifiers", "balance", "pending", "expiring", "test", "createdAt"], json!({
            "id": string,
            "identifiers": {"type": "array", "items": object(&["kind", "value"], json!({"kind": string, "value": string}))},
            "balance": {"type": "integer", "description": "what can be spent: without pending or expired points"},
            "pending": {"type": "integer", "minimum": 0, "description": "awarded, not yet spendable"},
            "expiring": {"type": "array", "maxItems": 5, "items": object(&["points", "at"], json!({"points": integer, "at": date_time()})),
                "description": "the next points to expire, soonest first"},
            "test": boolean, "createdAt": date_time()})),
        "ActivityItem": object(&["type", "at", "points", "test"], json!({
            "type": {"enum": ["event", "ledger"]}, "at": date_time(), "eventId": string, "clientEventId": string,
            "status": status(), "kind": entry_kind.clone(), "reason": string,
            "points": integer, "ruleId": string, "ledgerEntryId": string, "test": boolean})),
        "Allowance": list_of("RuleAllowance"),
        "RuleAllowance": object(&["ruleId", "ruleName", "limits"], json!({
            "ruleId": string, "ruleName": string,
            "limits": {"type": "array", "items": object(&["per", "used", "remaining", "resetsAt"], json!({
                "per": {"enum": ["day", "week", "month", "year", "lifetime"]},
                "count": integer, "points": integer,
                "used": {"type": "integer", "description": "awards for a count limit, points for a points limit"},
                "remaining": {"type": "integer", "minimum": 0},
                "resetsAt": nullable(date_time())}))}})),
        "AdjustmentSpec": stored(json!({"type": "object", "required": ["points", "reason"], "additionalProperties": false, "properties": {
            "points": {"type": "integer", "minimum": -1_000_000_000_000_i64, "maximum": 1_000_000_000_000_i64, "not": {"const": 0}},
            "reason": reason(),
            "idempotencyKey": {"type": ["string", "null"], "minLength": 1, "maxLength": 200,
                "description": "the same key again answers the first adjustment (200); with another body, 409"}}})),
        "Adjustment": object(&["id", "memberId", "kind", "points", "reason", "test", "createdAt", "occurredAt", "at", "balance"], json!({
            "id": string, "memberId": string, "kind": entry_kind, "points": integer, "reason": string,
            "test": boolean, "createdAt": date_time(), "occurredAt": date_time(), "at": date_time(),
            "balance": {"type": "integer", "description": "the member's balance after it"}})),
        "ReversalSpec": stored(json!({"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {
            "reason": reason(),
            "points": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000_000_000_i64,
                "description": "how many points to take back, split over the awards in proportion; all that is left when absent"}}})),
        "Reversal": object(&["points", "reversed", "balance"], json!({
            "points": {"type": "integer", "maximum": -1, "description": "taken back, in all"},
            "reversed": {"type": "array", "items": reference("Award"), "description": "taken back, per rule (negative)"},
            "balance": {"type": "integer", "description": "the member's balance after it"}})),
        "ActivityPage": page_of("ActivityItem"),
        "ItemError": item_error,
        "Award": award,
        "TraceEntry": trace_entry,
        "Event": object(&["id", "connectorId", "status", "test", "receivedAt", "points", "awards", "raw", "rawTruncated"], json!({
            "id": string, "connectorId": string, "status": status(), "reason": string, "error": reference("ItemError"),
            "clientEventId": string, "originalEventId": string, "memberId": string, "test": boolean,
            "receivedAt": date_time(), "occurredAt": date_time(), "points": integer,
            "awards": {"type": "array", "items": reference("Award")},
            "raw": {"description": "the item as received; past the size limit, its first bytes as a string"},
            "rawTruncated": boolean, "mapped": {"description": "the mapping's output"},
            "trace": {"type": "array", "items": reference("TraceEntry")},
            "warnings": {"type": "array", "items": string},
            "replayId": {"type": "string", "description": "an item a replay processed anew: the replay"},
            "replayedEventId": {"type": "string", "description": "... and the logged item it replays"}})),
        "EventPage": page_of("Event"),
        "EventErrors": list_of("EventErrorGroup"),
        "ReplaySpec": stored(json!({"type": "object", "required": ["connectorId"], "additionalProperties": false, "properties": {
            "connectorId": {"type": "string", "description": "the connector whose logged items are replayed"},
            "from": nullable(date_time()), "to": nullable(date_time()),
            "statuses": {"type": ["array", "null"], "minItems": 1, "items": status(), "description": "the statuses of the items to replay (default: all four)"},
            "mapping": {"oneOf": [{"type": "null"}, mapping("A JSONata expression to use instead of the connector's; one that does not compile is 422 invalid_mapping")]},
            "rules": {"type": ["array", "null"], "maxItems": 100, "items": {"type": "object"},
                "description": "the connector's rule set for this replay: {\"id\"} alone is a stored rule as it is; an id with a rule's fields, that rule as written here; no id, a new rule"},
            "apply": {"type": "boolean", "default": false, "description": "make the changes, exactly once; otherwise nothing is stored"}}})),
        "Replay": object(&["id", "spec", "until", "state", "processed", "total", "report", "createdAt", "updatedAt"], json!({
            "id": string, "spec": {"type": "object", "description": "the request"},
            "until": {"type": "string", "format": "date-time", "description": "the end of the items read, fixed at creation"},
            "state": {"enum": ["running", "done", "failed", "cancelled"]},
            "processed": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 0},
            "report": {"oneOf": [{"type": "null"}, reference("ReplayReport")]},
            "error": string, "createdAt": date_time(), "updatedAt": date_time()})),
        "ReplayOutcome": object(&["status", "points", "awards"], json!({
            "status": status(), "points": integer, "awards": {"type": "array", "items": reference("Award")},
            "reason": string, "error": reference("ItemError"), "memberId": string,
            "trace": {"type": "array", "items": reference("TraceEntry")},
            "eventId": {"type": "string", "description": "applied: the item logged when it was processed anew"}})),
        "ReplayReport": object(&["applied", "before", "after", "points", "members", "changed", "changes", "skipped"], json!({
            "applied": boolean,
            "before": reference("StatusCounts"), "after": reference("StatusCounts"),
            "points": object(&["before", "after", "byRule"], json!({"before": integer, "after": integer,
                "byRule": {"type": "array", "items": object(&["ruleId", "before", "after"], json!({"ruleId": string, "before": integer, "after": integer}))}})),
            "members": object(&["changed", "largest"], json!({"changed": {"type": "integer", "minimum": 0},
                "largest": {"type": "array", "maxItems": 20, "items": object(&["memberId", "before", "after"], json!({
                    "memberId": {"type": ["string", "null"], "description": "null: a member the replay would enrol"}, "before": integer, "after": integer}))}})),
            "changed": {"type": "integer", "minimum": 0},
            "changes": {"type": "array", "maxItems": 50, "items": object(&["eventId", "before", "after"], json!({
                "eventId": string, "before": reference("ReplayOutcome"), "after": reference("ReplayOutcome")}))},
            "skipped": {"type": "integer", "minimum": 0, "description": "items left as they were: a raw item cut at the log's limit, an accepted refund, an event reversed since"}})),
        "StatusCounts": object(&["accepted", "duplicate", "ignored", "rejected"], json!({
            "accepted": integer, "duplicate": integer, "ignored": integer, "rejected": integer})),
        "EventErrorGroup": object(&["status", "code", "count", "firstAt", "lastAt", "exampleEventId"], json!({
            "status": {"enum": ["rejected", "ignored"]},
            "code": {"type": "string", "description": "the error's code, or the ignored reason"},
            "path": {"type": "string", "description": "where in the mapped event a rejected item went wrong"},
            "count": {"type": "integer", "minimum": 1},
            "firstAt": date_time(), "lastAt": date_time(),
            "exampleEventId": {"type": "string", "description": "the newest item of the group"},
            "message": {"type": "string", "description": "that item's error message"}})),
        "SimulateRequest": {"type": "object", "required": ["payload"], "additionalProperties": false, "properties": {
            "payload": {"type": ["object", "array"], "description": "one event (an object) or a bulk (an array)"},
            "mapping": mapping("A JSONata expression to try instead of the connector's; one that does not compile is 422 invalid_mapping with its position"),
            "test": {"type": ["boolean", "null"], "description": "simulate as test data (default: the connector's testMode)"}}},
        "SimulationResponse": object(&["results"], json!({"results": {"type": "array", "items": object(
            &["index", "status", "mapped", "member", "points", "awards", "trace"],
            json!({"index": integer, "status": status(), "reason": string, "error": reference("ItemError"),
                "clientEventId": string, "originalEventId": string, "mapped": any,
                "member": {"oneOf": [{"type": "null"}, object(&["kind", "value", "wouldEnroll"],
                    json!({"id": string, "kind": string, "value": string, "wouldEnroll": boolean}))]},
                "points": integer, "awards": {"type": "array", "items": reference("Award")},
                "trace": {"type": "array", "items": reference("TraceEntry")},
                "warnings": {"type": "array", "items": string}}))}})),
        "PurgeCounts": object(&["events", "ledgerEntries", "members"], json!({
            "events": {"type": "integer", "minimum": 0}, "ledgerEntries": {"type": "integer", "minimum": 0}, "members": {"type": "integer", "minimum": 0}})),
        "IngestResponse": object(&["results", "accepted", "duplicates", "ignored", "rejected"], json!({
            "results": {"type": "array", "items": object(&["index", "status", "eventId", "points"], json!({
                "index": integer, "status": status(), "eventId": string, "clientEventId": string, "originalEventId": string,
                "memberId": string, "points": integer, "awards": {"type": "array", "items": reference("Award")},
                "reversed": {"type": "array", "items": reference("Award"), "description": "a refund's: what it took back per rule (negative)"},
                "reason": string, "error": reference("ItemError")}))},
            "accepted": integer, "duplicates": integer, "ignored": integer, "rejected": integer})),
        "Me": {"oneOf": [
            object(&["role"], json!({"role": {"const": "root"}})),
            object(&["role", "programId"], json!({"role": {"const": "program"}, "programId": string}))]},
        "WebhookSpec": stored(json!({"type": "object", "required": ["url", "events"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                "description": "where messages are POSTed: an http or https URL with a host, without credentials or fragment; a target on a loopback, private or link-local address (by address, or by a name that resolves there, localhost included) is refused with 422 unless the server allows private targets"},
            "events": {"type": "array", "minItems": 1, "items": {"enum": ["member.points_changed", "event.logged"]}},
            "secret": {"type": ["string", "null"], "pattern": WEBHOOK_SECRET, "description": "the signing secret; generated and shown once when absent"}}})),
        "RotationSpec": stored(json!({"type": "object", "additionalProperties": false, "properties": {
            "secret": {"type": ["string", "null"], "pattern": WEBHOOK_SECRET, "description": "the new signing secret; generated and shown once when absent"},
            "graceSeconds": {"type": ["integer", "null"], "minimum": 0, "maximum": 604_800,
                "description": "how long the current secret goes on signing beside the new one (default 86400)"}}})),
        "Webhook": object(&["id", "url", "events", "createdAt", "previousSecretExpiresAt"], json!({
            "id": string, "url": string,
            "events": {"type": "array", "items": {"enum": ["member.points_changed", "event.logged"]}},
            "createdAt": date_time(),
            "previousSecretExpiresAt": nullable(date_time()),
            "secret": {"type": "string", "pattern": "^whsec_", "description": "only when generated, in this answer only"}})),
        "WebhookList": list_of("Webhook"),
        "Delivery": object(&["webhookId", "endpointId", "type", "state", "createdAt", "nextAttemptAt", "attempts", "payload"], json!({
            "webhookId": {"type": "string", "description": "the message's webhook-id header, the same on every attempt"},
            "endpointId": string,
            "type": {"enum": ["member.points_changed", "event.logged", "webhook.test"]},
            "state": {"enum": ["pending", "delivered", "failed"]},
            "memberId": string, "createdAt": date_time(), "nextAttemptAt": nullable(date_time()),
            "attempts": {"type": "array", "items": object(&["at", "status", "durationMs"], json!({
                "at": date_time(),
                "status": {"type": ["integer", "null"], "description": "the receiver's HTTP status; null when there was no answer"},
                "error": {"type": "string", "description": "why there was no answer"},
                "durationMs": {"type": "integer", "minimum": 0}}))},
            "payload": {"type": "object", "description": "the body sent: {type, timestamp, data}"}})),
        "DeliveryPage": page_of("Delivery"),
        "Health": object(&["status"], json!({"status": {"const": "ok"}})),
        "Metrics": {"type": "string", "description": "OpenMetrics text"},
        "ChangeStream": {"type": "string", "description": "Server-sent events, never ending: `event: ledger` with {memberId, entry, balance, pending} (the member's spendable and pending points just after the entry) and `event: event` with the event-log item without raw, each with `id:` (the cursor to send back as Last-Event-ID, a header, or as ?after=); `event: reset` when changes after the cursor are past retention (an hour) and the stream goes on from the oldest kept; `event: dropped` {reason: too_slow | store_unavailable} as the last message of a client that fell 4096 messages behind or whose catch-up failed (reconnect with the cursor); a `:heartbeat` comment every 15 s. A Last-Event-ID that is not digits is 422, as an invalid query parameter."},
        "OpenApiDocument": {"type": "object", "description": "This document"}
    });
    // Examples, which the examples phase of a conformance check sends as they are.
    all["ProgramSpec"]["examples"] = json!([{"name": "Readers", "defaultIdentifierKind": "email", "enrollUnknownMembers": true}]);
    let mut without_template = all["ConnectorSpec"].clone();
    without_template["properties"]["template"] = json!({"not": {}});
    all["ConnectorSpecWithoutTemplate"] = without_template;
    all["ConnectorSpec"]["examples"] = json!([{"name": "Article Read", "eventType": "custom.basic",
        "auth": {"type": "queryToken", "param": "token", "token": "s3cret"},
        "mapping": EXAMPLE_MAPPING, "testMode": false, "maxEventAgeDays": 30}]);
    all["RuleSpec"]["examples"] = json!([{"name": "Sport readers", "connectorId": "con_01a0000000000000000000000000000",
        "conditions": {"all": [{"tag": "theme", "op": "eq", "value": "sport"}, {"counter": "total", "op": "gte", "value": 5}]},
        "points": {"fixed": 10}, "limits": [{"count": 1, "per": "day"}], "priority": 0, "stopOtherRules": false,
        "activeFrom": null, "activeUntil": null}]);
    all["SimulateRequest"]["examples"] = json!([{"payload": article}]);
    all
}
