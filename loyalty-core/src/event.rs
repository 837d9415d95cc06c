//! Canonical events: what a mapping must produce, validated into typed form. Every error names
//! the JSON path of the fault and what was expected there.

use crate::connector::EventType;
use crate::member::integer_digits;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

pub const MAX_TAGS: usize = 64;
pub const MAX_COUNTERS: usize = 64;
pub const MAX_ITEMS: usize = 1000;
const MAX_NAME_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 1024;
const MAX_CLIENT_EVENT_ID_CHARS: usize = 256;
const MAX_REASON_CHARS: usize = 500;
/// How far in the future an event's timestamp may be (clock skew between systems).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// A text criterion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tag {
    pub name: String,
    pub value: String,
}

/// A numeric criterion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counter {
    pub name: String,
    pub value: f64,
}

/// One line of a purchase.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseItem {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub quantity: f64,
    pub unit_price: Option<f64>,
}

/// The fields of `ecommerce.refund`: which purchase, and how much of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub order_id: String,
    /// Refunded, in major units; `None`: all of it.
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub reason: Option<String>,
}

/// The fields of `ecommerce.purchase`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub order_id: String,
    /// The total, in major units.
    pub amount: f64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub items: Vec<PurchaseItem>,
}

impl Purchase {
    /// The number of units bought: the sum of the items' quantities.
    pub fn item_count(&self) -> f64 {
        self.items.iter().map(|i| i.quantity).sum()
    }
}

/// A validated canonical event.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalEvent {
    pub client_event_id: Option<String>,
    /// When it happened; `None` means when it was received.
    pub occurred_at: Option<DateTime<Utc>>,
    pub tags: Vec<Tag>,
    pub counters: Vec<Counter>,
    pub purchase: Option<Purchase>,
    pub refund: Option<Refund>,
    /// Things dropped on the way (a tag without a value), for the trace.
    pub warnings: Vec<String>,
}

impl CanonicalEvent {
    /// Counters that share a name are summed.
    pub fn counter(&self, name: &str) -> Option<f64> {
        let mut found = None;
        for counter in self.counters.iter().filter(|c| c.name == name) {
            found = Some(found.unwrap_or(0.0) + counter.value);
        }
        found
    }

    pub fn tag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags
            .iter()
            .filter(move |t| t.name == name)
            .map(|t| t.value.as_str())
    }
}

/// Why an item was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ItemError {
    /// `validation_failed`, `mapping_error`, `event_in_future`, `event_too_old`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl ItemError {
    pub fn validation(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "validation_failed".into(),
            message: message.into(),
            path: Some(path.into()),
        }
    }
}

/// Validates a mapping's output into a canonical event of `event_type`.
pub fn validate(
    mapped: &Value,
    event_type: EventType,
    received_at: DateTime<Utc>,
    max_age_days: u32,
) -> Result<CanonicalEvent, ItemError> {
    let root = mapped.as_object().ok_or_else(|| {
        ItemError::validation(
            "",
            format!(
                "the mapping must produce a JSON object, it produced {}",
                describe(mapped)
            ),
        )
    })?;
    let client_event_id = match root.get("clientEventId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.trim().is_empty() => None,
        Some(Value::String(id))
            if id.chars().count() <= MAX_CLIENT_EVENT_ID_CHARS && !id.chars().any(char::is_control) =>
        {
            Some(id.trim().to_owned())
        }
        Some(Value::Number(n)) if integer_digits(n).is_some() => integer_digits(n),
        Some(other) => {
            return Err(ItemError::validation(
                "/clientEventId",
                format!(
                    "expected a string of at most {MAX_CLIENT_EVENT_ID_CHARS} characters without control characters, or an integer, found {}",
                    describe(other)
                ),
            ))
        }
    };
    let payload_value = root.get("payload");
    let empty = Map::new();
    let payload = match payload_value {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(ItemError::validation(
                "/payload",
                format!("expected an object, found {}", describe(other)),
            ))
        }
    };
    let occurred_at = match payload.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_timestamp(value)?),
    };
    if let Some(at) = occurred_at {
        if at > received_at + MAX_FUTURE_SKEW {
            return Err(ItemError {
                code: "event_in_future".into(),
                message: format!(
                    "the event's timestamp {} is more than 5 minutes after the time received {}",
                    at.to_rfc3339(),
                    received_at.to_rfc3339()
                ),
                path: Some("/payload/timestamp".into()),
            });
        }
        if at < received_at - Duration::days(i64::from(max_age_days)) {
            return Err(ItemError {
                code: "event_too_old".into(),
                message: format!(
                    "the event's timestamp {} is older than the connector's maximum event age of {max_age_days} days",
                    at.to_rfc3339()
                ),
                path: Some("/payload/timestamp".into()),
            });
        }
    }
    let mut warnings = Vec::new();
    let tags = parse_tags(payload.get("tags"), &mut warnings)?;
    let counters = parse_counters(payload.get("counters"))?;
    let (purchase, refund) = match event_type {
        EventType::CustomBasic => (None, None),
        EventType::EcommercePurchase => (Some(parse_purchase(payload)?), None),
        EventType::EcommerceRefund => (None, Some(parse_refund(payload)?)),
    };
    Ok(CanonicalEvent {
        client_event_id,
        occurred_at,
        tags,
        counters,
        purchase,
        refund,
        warnings,
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event's timestamp: an ISO-8601 string (no zone means UTC) or integer epoch
/// milliseconds, at the precision stores keep (see `clock::stored_precision`).
pub(crate) fn parse_timestamp(value: &Value) -> Result<DateTime<Utc>, ItemError> {
    parse_timestamp_exact(value).map(crate::clock::stored_precision)
}

fn parse_timestamp_exact(value: &Value) -> Result<DateTime<Utc>, ItemError> {
    let path = "/payload/timestamp";
    let expected = "expected an ISO-8601 date-time or integer epoch milliseconds";
    match value {
        Value::Number(n) => {
            let millis = n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| ItemError::validation(path, format!("{expected}, found {n}")))?;
            Utc.timestamp_millis_opt(millis).single().ok_or_else(|| {
                ItemError::validation(path, format!("{millis} is not a representable instant"))
            })
        }
        Value::String(text) => {
            let text = text.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Ok(at.with_timezone(&Utc));
            }
            for format in [
                "%Y-%m-%dT%H:%M:%S%.f%z",
                "%Y-%m-%d %H:%M:%S%.f%z",
                "%Y-%m-%dT%H:%M:%S%.f%:z",
            ] {
                if let Ok(at) = DateTime::parse_from_str(text, format) {
                    return Ok(at.with_timezone(&Utc));
                }
            }
            for format in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ] {
                if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
                    return Ok(at.and_utc());
                }
            }
            if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return Ok(date
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc());
            }
            Err(ItemError::validation(
                path,
                format!("{expected}, found {text:?}"),
            ))
        }
        other => Err(ItemError::validation(
            path,
            format!("{expected}, found {}", describe(other)),
        )),
    }
}

fn array_at<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a [Value], ItemError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(ItemError::validation(
            path,
            format!("expected an array, found {}", describe(other)),
        )),
    }
}

/// Where an entry of a list sits (`/payload/tags/3`): written out only when an error or a
/// warning names it, not for every entry of every event.
#[derive(Clone, Copy, Debug)]
struct EntryPath {
    list: &'static str,
    index: usize,
}

impl std::fmt::Display for EntryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.list, self.index)
    }
}

fn entry_name(entry: &Value, path: EntryPath) -> Result<(&Map<String, Value>, String), ItemError> {
    let object = entry.as_object().ok_or_else(|| {
        ItemError::validation(
            path.to_string(),
            format!(
                "expected an object {{name, value}}, found {}",
                describe(entry)
            ),
        )
    })?;
    match object.get("name") {
        Some(Value::String(name))
            if !name.trim().is_empty() && name.chars().count() <= MAX_NAME_CHARS =>
        {
            Ok((object, name.trim().to_owned()))
        }
        other => Err(ItemError::validation(
            format!("{path}/name"),
            format!(
                "expected a non-empty string of at most {MAX_NAME_CHARS} characters, found {}",
                other.map_or("nothing", describe)
            ),
        )),
    }
}

fn parse_tags(value: Option<&Value>, warnings: &mut Vec<String>) -> Result<Vec<Tag>, ItemError> {
    let entries = array_at(value, "/payload/tags")?;
    let mut tags = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path = EntryPath {
            list: "/payload/tags",
            index,
        };
        let (object, name) = entry_name(entry, path)?;
        let value = match object.get("value") {
            None | Some(Value::Null) => {
                warnings.push(format!(
                    "tag {name:?} at {path} has no value and was dropped"
                ));
                continue;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => integer_digits(n).unwrap_or_else(|| n.to_string()),
            Some(other) => {
                return Err(ItemError::validation(
                    format!("{path}/value"),
                    format!(
                        "expected a string, number or boolean, found {}",
                        describe(other)
                    ),
                ))
            }
        };
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(ItemError::validation(
                format!("{path}/value"),
                format!("expected at most {MAX_TAG_VALUE_CHARS} characters"),
            ));
        }
        tags.push(Tag { name, value });
    }
    if tags.len() > MAX_TAGS {
        return Err(ItemError::validation(
            "/payload/tags",
            format!("expected at most {MAX_TAGS} tags, found {}", tags.len()),
        ));
    }
    Ok(tags)
}

fn number_at(
    value: Option<&Value>,
    path: impl std::fmt::Display,
) -> Result<Option<f64>, ItemError> {
    let path = || path.to_string();
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(ItemError::validation(path(), "expected a finite number")),
        },
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(ItemError::validation(
                path(),
                format!("expected a finite number, found the string {s:?}"),
            )),
        },
        Some(other) => Err(ItemError::validation(
            path(),
            format!("expected a finite number, found {}", describe(other)),
        )),
    }
}

fn parse_counters(value: Option<&Value>) -> Result<Vec<Counter>, ItemError> {
    let entries = array_at(value, "/payload/counters")?;
    if entries.len() > MAX_COUNTERS {
        return Err(ItemError::validation(
            "/payload/counters",
            format!(
                "expected at most {MAX_COUNTERS} counters, found {}",
                entries.len()
            ),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let path = EntryPath {
                list: "/payload/counters",
                index,
            };
            let (object, name) = entry_name(entry, path)?;
            let value =
                number_at(object.get("value"), format_args!("{path}/value"))?.ok_or_else(|| {
                    ItemError::validation(
                        format!("{path}/value"),
                        "expected a finite number, found nothing",
                    )
                })?;
            Ok(Counter { name, value })
        })
        .collect()
}

fn optional_text(
    object: &Map<String, Value>,
    field: &str,
    path: EntryPath,
) -> Result<Option<String>, ItemError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_TAG_VALUE_CHARS => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ItemError::validation(
            format!("{path}/{field}"),
            format!("expected at most {MAX_TAG_VALUE_CHARS} characters"),
        )),
        Some(Value::Number(n)) => Ok(Some(integer_digits(n).unwrap_or_else(|| n.to_string()))),
        Some(other) => Err(ItemError::validation(
            format!("{path}/{field}"),
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

fn parse_order_id(payload: &Map<String, Value>) -> Result<String, ItemError> {
    match payload.get("orderId") {
        Some(Value::String(id))
            if !id.trim().is_empty()
                && id.chars().count() <= MAX_CLIENT_EVENT_ID_CHARS
                && !id.chars().any(char::is_control) =>
        {
            Ok(id.trim().to_owned())
        }
        Some(Value::Number(n)) if integer_digits(n).is_some() => {
            Ok(integer_digits(n).unwrap_or_default())
        }
        other => Err(ItemError::validation(
            "/payload/orderId",
            format!(
                "expected a non-empty string, found {}",
                other.map_or("nothing", describe)
            ),
        )),
    }
}

fn parse_currency(value: Option<&Value>) -> Result<String, ItemError> {
    match value {
        Some(Value::String(c)) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(c.to_ascii_uppercase())
        }
        other => Err(ItemError::validation(
            "/payload/currency",
            format!(
                "expected an ISO 4217 code of three letters, found {}",
                other.map_or_else(|| "nothing".to_owned(), |v| v.to_string())
            ),
        )),
    }
}

/// `ecommerce.refund`: the order, and how much of it was refunded (all of it when absent).
fn parse_refund(payload: &Map<String, Value>) -> Result<Refund, ItemError> {
    let order_id = parse_order_id(payload)?;
    let amount = number_at(payload.get("amount"), "/payload/amount")?;
    if let Some(amount) = amount.filter(|a| *a < 0.0) {
        return Err(ItemError::validation(
            "/payload/amount",
            format!("expected a number >= 0, found {amount}"),
        ));
    }
    let currency = match payload.get("currency") {
        None | Some(Value::Null) => None,
        value => Some(parse_currency(value)?),
    };
    let reason = match payload.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.chars().count() <= MAX_REASON_CHARS => {
            Some(r.trim().to_owned()).filter(|r| !r.is_empty())
        }
        Some(other) => {
            return Err(ItemError::validation(
                "/payload/reason",
                format!(
                    "expected a string of at most {MAX_REASON_CHARS} characters, found {}",
                    describe(other)
                ),
            ))
        }
    };
    Ok(Refund {
        order_id,
        amount,
        currency,
        reason,
    })
}

fn parse_purchase(payload: &Map<String, Value>) -> Result<Purchase, ItemError> {
    let order_id = parse_order_id(payload)?;
    let amount = number_at(payload.get("amount"), "/payload/amount")?.ok_or_else(|| {
        ItemError::validation("/payload/amount", "expected a number >= 0, found nothing")
    })?;
    if amount < 0.0 {
        return Err(ItemError::validation(
            "/payload/amount",
            format!("expected a number >= 0, found {amount}"),
        ));
    }
    let currency = parse_currency(payload.get("currency"))?;
    let entries = array_at(payload.get("items"), "/payload/items")?;
    if entries.len() > MAX_ITEMS {
        return Err(ItemError::validation(
            "/payload/items",
            format!(
                "expected at most {MAX_ITEMS} items, found {}",
                entries.len()
            ),
        ));
    }
    let items = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let path = EntryPath {
                list: "/payload/items",
                index,
            };
            let object = entry.as_object().ok_or_else(|| {
                ItemError::validation(
                    path.to_string(),
                    format!("expected an object, found {}", describe(entry)),
                )
            })?;
            let quantity =
                number_at(object.get("quantity"), format_args!("{path}/quantity"))?.unwrap_or(1.0);
            if quantity <= 0.0 {
                return Err(ItemError::validation(
                    format!("{path}/quantity"),
                    format!("expected a number > 0, found {quantity}"),
                ));
            }
            let unit_price = number_at(object.get("unitPrice"), format_args!("{path}/unitPrice"))?;
            if unit_price.is_some_and(|p| p < 0.0) {
                return Err(ItemError::validation(
                    format!("{path}/unitPrice"),
                    "expected a number >= 0",
                ));
            }
            Ok(PurchaseItem {
                sku: optional_text(object, "sku", path)?,
                name: optional_text(object, "name", path)?,
                category: optional_text(object, "category", path)?,
                quantity,
                unit_price,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Purchase {
        order_id,
        amount,
        currency,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn check_err(mapped: Value, event_type: EventType, code: &str, path: &str) {
        let err = validate(&mapped, event_type, now(), 30).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.path.as_deref()),
            (code, Some(path)),
            "{err:?}"
        );
    }

    #[test]
    fn valid_basic_event() {
        let event = validate(
            &json!({"clientEventId": 17, "profile": {"kind": "default", "value": "a@b.co"},
                    "payload": {"timestamp": "2026-11-26T10:00:00", "tags": [{"name": "theme", "value": "sport"}, {"name": "x", "value": null}, {"name": "n", "value": 3}],
                    "counters": [{"name": "total", "value": 5}, {"name": "total", "value": "2.5"}]}}),
            EventType::CustomBasic,
            now(),
            30,
        )
        .unwrap();
        assert_eq!(event.client_event_id.as_deref(), Some("17"));
        assert_eq!(
            event.occurred_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap())
        );
        assert_eq!(event.tags.len(), 2);
        assert_eq!(event.tag_values("n").collect::<Vec<_>>(), ["3"]);
        assert_eq!(event.counter("total"), Some(7.5));
        assert_eq!(event.warnings.len(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let basic = EventType::CustomBasic;
        check_err(json!([1]), basic, "validation_failed", "");
        check_err(
            json!({"payload": {"counters": [{"name": "a", "value": "x"}]}}),
            basic,
            "validation_failed",
            "/payload/counters/0/value",
        );
        check_err(
            json!({"payload": {"counters": [{"name": "a", "value": true}]}}),
            basic,
            "validation_failed",
            "/payload/counters/0/value",
        );
        check_err(
            json!({"payload": {"counters": [{"value": 1}]}}),
            basic,
            "validation_failed",
            "/payload/counters/0/name",
        );
        check_err(
            json!({"payload": {"tags": {"a": 1}}}),
            basic,
            "validation_failed",
            "/payload/tags",
        );
        check_err(
            json!({"payload": {"tags": [{"name": "a", "value": [1]}]}}),
            basic,
            "validation_failed",
            "/payload/tags/0/value",
        );
        check_err(
            json!({"payload": {"timestamp": "yesterday"}}),
            basic,
            "validation_failed",
            "/payload/timestamp",
        );
        check_err(
            json!({"payload": {"timestamp": "2026-11-26T12:06:00Z"}}),
            basic,
            "event_in_future",
            "/payload/timestamp",
        );
        check_err(
            json!({"payload": {"timestamp": 1_000_000_000_000_i64}}),
            basic,
            "event_too_old",
            "/payload/timestamp",
        );
        check_err(
            json!({"clientEventId": {"a": 1}}),
            basic,
            "validation_failed",
            "/clientEventId",
        );
        let purchase = EventType::EcommercePurchase;
        check_err(
            json!({"payload": {"amount": 1, "currency": "EUR"}}),
            purchase,
            "validation_failed",
            "/payload/orderId",
        );
        check_err(
            json!({"payload": {"orderId": "o", "amount": -1, "currency": "EUR"}}),
            purchase,
            "validation_failed",
            "/payload/amount",
        );
        check_err(
            json!({"payload": {"orderId": "o", "amount": 1, "currency": "EURO"}}),
            purchase,
            "validation_failed",
            "/payload/currency",
        );
        check_err(
            json!({"payload": {"orderId": "o", "amount": 1, "currency": "EUR", "items": [{"quantity": 0}]}}),
            purchase,
            "validation_failed",
            "/payload/items/0/quantity",
        );
        check_err(
            json!({"payload": {"orderId": "o", "amount": 1, "currency": "EUR", "items": [{"sku": "a"}, {"unitPrice": "x"}]}}),
            purchase,
            "validation_failed",
            "/payload/items/1/unitPrice",
        );
        check_err(
            json!({"payload": {"orderId": "o", "amount": 1, "currency": "EUR", "items": [{"sku": ["a"]}]}}),
            purchase,
            "validation_failed",
            "/payload/items/0/sku",
        );
        let too_long = json!({"payload": {"orderId": "o", "amount": 1, "currency": "EUR",
            "items": [{"name": "n".repeat(MAX_TAG_VALUE_CHARS + 1)}]}});
        let err = validate(&too_long, purchase, now(), 30).unwrap_err();
        assert_eq!(err.path.as_deref(), Some("/payload/items/0/name"));
        assert_eq!(
            err.message,
            format!("expected at most {MAX_TAG_VALUE_CHARS} characters"),
            "a string too long is not called 'not a string'"
        );
    }

    #[test]
    fn timestamps() {
        let at = |v: Value| parse_timestamp(&v).unwrap().to_rfc3339();
        assert_eq!(
            at(json!(1_614_265_330_000_i64)),
            "2021-02-25T15:02:10+00:00"
        );
        assert_eq!(
            at(json!("2021-02-25T16:02:10+01:00")),
            "2021-02-25T15:02:10+00:00"
        );
        assert_eq!(
            at(json!("2021-02-25 15:02:10")),
            "2021-02-25T15:02:10+00:00"
        );
        assert_eq!(at(json!("2021-02-25")), "2021-02-25T00:00:00+00:00");
        // Kept to the microsecond, as stores keep it.
        assert_eq!(
            at(json!("2021-02-25T15:02:10.123456789Z")),
            "2021-02-25T15:02:10.123456+00:00"
        );
        assert!(parse_timestamp(&json!(true)).is_err());
    }

    #[test]
    fn purchase_defaults() {
        let event = validate(
            &json!({"payload": {"orderId": 991, "amount": "20.5", "currency": "eur", "items": [{"sku": "A"}, {"sku": "B", "quantity": 2}]}}),
            EventType::EcommercePurchase,
            now(),
            30,
        )
        .unwrap();
        let purchase = event.purchase.unwrap();
        assert_eq!(
            (
                purchase.order_id.as_str(),
                purchase.amount,
                purchase.currency.as_str()
            ),
            ("991", 20.5, "EUR")
        );
        assert_eq!(purchase.item_count(), 3.0);
    }
}
