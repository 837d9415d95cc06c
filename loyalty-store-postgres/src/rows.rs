//! Rows to domain types. JSON columns are read as text and parsed here, so that a decoding
//! error never quotes stored data (see [`PostgresStoreError::json`]).

use crate::error::{PostgresStoreError, Result};
use chrono::{DateTime, Utc};
use loyalty_core::connector::{Connector, EventType};
use loyalty_core::ids::{
    ConnectorId, EventId, LedgerEntryId, MemberId, ProgramId, ReplayId, RuleId,
};
use loyalty_core::ledger::{
    ActivityItem, ActivityType, EntryKind, ItemStatus, LedgerEntry, LogEntry, RawJson,
};
use loyalty_core::member::{Identifier, Member};
use loyalty_core::program::{PointsExpiry, Program};
use loyalty_core::rules::{Rule, RuleDefinition};
use loyalty_core::secret::TokenHash;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(crate) const PROGRAM_COLUMNS: &str =
    "id, name, default_identifier_kind, enroll_unknown_members, points_expiry_days, \
     admin_token_hash, created_at";

pub(crate) const CONNECTOR_COLUMNS: &str = "id, program_id, name, event_type, auth::text AS auth, \
     mapping, test_mode, max_event_age_days, revision, created_at, updated_at, deleted";

pub(crate) const RULE_COLUMNS: &str = "id, program_id, connector_id, name, \
     conditions::text AS conditions, points::text AS points, limits::text AS limits, priority, \
     stop_other_rules, pending_days, active_from, active_until, created_at, updated_at";

pub(crate) const EVENT_COLUMNS: &str = "program_id, id, seq, connector_id, status, reason, \
     error::text AS error, client_event_id, original_event_id, member_id, test, received_at, \
     occurred_at, points, awards::text AS awards, raw::text AS raw, raw_truncated, \
     mapped::text AS mapped, trace::text AS trace, warnings::text AS warnings, replay_id, \
     replayed_event_id";

pub(crate) const LEDGER_COLUMNS: &str = "program_id, member_id, seq, id, kind, event_id, \
     connector_id, rule_id, points, reverses, reason, available_at, test, created_at, occurred_at";

/// A member with its identifiers, aggregated into arrays.
pub(crate) const MEMBER_COLUMNS: &str = "m.program_id, m.id, m.balance, m.test, m.created_at, \
     ARRAY(SELECT i.kind FROM member_identifiers i \
           WHERE i.program_id = m.program_id AND i.member_id = m.id ORDER BY i.kind, i.value) AS kinds, \
     ARRAY(SELECT i.value FROM member_identifiers i \
           WHERE i.program_id = m.program_id AND i.member_id = m.id ORDER BY i.kind, i.value) AS identifier_values";

fn parse_json<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| PostgresStoreError::json(what, &e))
}

fn optional_json<T: DeserializeOwned>(
    text: Option<String>,
    what: &'static str,
) -> Result<Option<T>> {
    text.map(|t| parse_json(&t, what)).transpose()
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| PostgresStoreError::json("value to store", &e))
}

pub(crate) fn program(row: &PgRow) -> Result<Program> {
    Ok(Program {
        id: ProgramId::new(row.try_get::<String, _>("id")?),
        name: row.try_get("name")?,
        default_identifier_kind: row.try_get("default_identifier_kind")?,
        enroll_unknown_members: row.try_get("enroll_unknown_members")?,
        points_expiry: row
            .try_get::<Option<i32>, _>("points_expiry_days")?
            .map(|days| PointsExpiry {
                after_days: days.unsigned_abs(),
            }),
        admin_token_hash: TokenHash::from_hex(row.try_get::<String, _>("admin_token_hash")?),
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn connector(row: &PgRow) -> Result<Connector> {
    let event_type: String = row.try_get("event_type")?;
    let event_type = match event_type.as_str() {
        "custom.basic" => EventType::CustomBasic,
        "ecommerce.purchase" => EventType::EcommercePurchase,
        "ecommerce.refund" => EventType::EcommerceRefund,
        _ => {
            return Err(PostgresStoreError::corrupt(
                "connectors.event_type",
                "unknown event type",
            ))
        }
    };
    let days: i32 = row.try_get("max_event_age_days")?;
    Ok(Connector {
        id: ConnectorId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        name: row.try_get("name")?,
        event_type,
        auth: parse_json(&row.try_get::<String, _>("auth")?, "connectors.auth")?,
        mapping: row.try_get("mapping")?,
        test_mode: row.try_get("test_mode")?,
        max_event_age_days: u32::try_from(days).map_err(|_| {
            PostgresStoreError::corrupt("connectors.max_event_age_days", "negative")
        })?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted: row.try_get("deleted")?,
    })
}

pub(crate) fn rule(row: &PgRow) -> Result<Rule> {
    let conditions: Value =
        parse_json(&row.try_get::<String, _>("conditions")?, "rules.conditions")?;
    let points: Value = parse_json(&row.try_get::<String, _>("points")?, "rules.points")?;
    let limits: Value = parse_json(&row.try_get::<String, _>("limits")?, "rules.limits")?;
    // The compiled form is not stored: it is rebuilt from what the admin wrote, so that it
    // always matches the engine's current compiler.
    let definition = RuleDefinition::compile(&conditions, &points, &limits)
        .map_err(|e| PostgresStoreError::corrupt("rules definition", e.code()))?;
    Ok(Rule {
        id: RuleId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        connector_id: ConnectorId::new(row.try_get::<String, _>("connector_id")?),
        name: row.try_get("name")?,
        conditions,
        points,
        limits,
        priority: row.try_get("priority")?,
        stop_other_rules: row.try_get("stop_other_rules")?,
        pending_days: row
            .try_get::<Option<i32>, _>("pending_days")?
            .map(i32::unsigned_abs),
        active_from: row.try_get("active_from")?,
        active_until: row.try_get("active_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        definition,
    })
}

pub(crate) fn member(row: &PgRow) -> Result<Member> {
    let kinds: Vec<String> = row.try_get("kinds")?;
    let values: Vec<String> = row.try_get("identifier_values")?;
    Ok(Member {
        id: MemberId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        identifiers: kinds
            .into_iter()
            .zip(values)
            .map(|(kind, value)| Identifier { kind, value })
            .collect(),
        balance: row.try_get("balance")?,
        test: row.try_get("test")?,
        created_at: row.try_get("created_at")?,
    })
}

fn status(text: &str, what: &'static str) -> Result<ItemStatus> {
    ItemStatus::parse(text).ok_or_else(|| PostgresStoreError::corrupt(what, "unknown status"))
}

pub(crate) fn log_entry(row: &PgRow) -> Result<LogEntry> {
    Ok(LogEntry {
        id: EventId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        connector_id: ConnectorId::new(row.try_get::<String, _>("connector_id")?),
        status: status(&row.try_get::<String, _>("status")?, "events.status")?,
        reason: row.try_get("reason")?,
        error: optional_json(row.try_get("error")?, "events.error")?,
        client_event_id: row.try_get("client_event_id")?,
        original_event_id: row
            .try_get::<Option<String>, _>("original_event_id")?
            .map(EventId::new),
        member_id: row
            .try_get::<Option<String>, _>("member_id")?
            .map(MemberId::new),
        test: row.try_get("test")?,
        received_at: row.try_get("received_at")?,
        occurred_at: row.try_get("occurred_at")?,
        points: row.try_get("points")?,
        awards: parse_json(&row.try_get::<String, _>("awards")?, "events.awards")?,
        // The column's type proved it JSON: kept as text, not parsed.
        raw: RawJson::from_json_text(row.try_get::<String, _>("raw")?),
        raw_truncated: row.try_get("raw_truncated")?,
        mapped: row
            .try_get::<Option<String>, _>("mapped")?
            .map(RawJson::from_json_text),
        trace: optional_json(row.try_get("trace")?, "events.trace")?,
        warnings: parse_json(&row.try_get::<String, _>("warnings")?, "events.warnings")?,
        replay_id: row
            .try_get::<Option<String>, _>("replay_id")?
            .map(ReplayId::new),
        replayed_event_id: row
            .try_get::<Option<String>, _>("replayed_event_id")?
            .map(EventId::new),
        seq: row.try_get("seq")?,
    })
}

pub(crate) fn ledger_entry(row: &PgRow) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: LedgerEntryId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        member_id: MemberId::new(row.try_get::<String, _>("member_id")?),
        kind: entry_kind(&row.try_get::<String, _>("kind")?)?,
        event_id: row
            .try_get::<Option<String>, _>("event_id")?
            .map(EventId::new),
        connector_id: row
            .try_get::<Option<String>, _>("connector_id")?
            .map(ConnectorId::new),
        rule_id: row
            .try_get::<Option<String>, _>("rule_id")?
            .map(RuleId::new),
        points: row.try_get("points")?,
        reverses: row
            .try_get::<Option<String>, _>("reverses")?
            .map(LedgerEntryId::new),
        reason: row.try_get("reason")?,
        available_at: row.try_get("available_at")?,
        test: row.try_get("test")?,
        created_at: row.try_get("created_at")?,
        occurred_at: row.try_get("occurred_at")?,
        seq: row.try_get("seq")?,
    })
}

fn entry_kind(text: &str) -> Result<EntryKind> {
    EntryKind::parse(text).ok_or_else(|| PostgresStoreError::corrupt("ledger_entries.kind", text))
}

/// One row of the activity query (events and ledger entries unioned).
pub(crate) fn activity_item(row: &PgRow) -> Result<ActivityItem> {
    let kind: String = row.try_get("kind")?;
    let status = row
        .try_get::<Option<String>, _>("status")?
        .map(|s| status(&s, "events.status"))
        .transpose()?;
    let at: DateTime<Utc> = row.try_get("at")?;
    Ok(ActivityItem {
        kind: if kind == "ledger" {
            ActivityType::Ledger
        } else {
            ActivityType::Event
        },
        at,
        event_id: row
            .try_get::<Option<String>, _>("event_id")?
            .map(EventId::new),
        client_event_id: row.try_get("client_event_id")?,
        status,
        entry_kind: row
            .try_get::<Option<String>, _>("entry_kind")?
            .map(|k| entry_kind(&k))
            .transpose()?,
        reason: row.try_get("reason")?,
        points: row.try_get("points")?,
        rule_id: row
            .try_get::<Option<String>, _>("rule_id")?
            .map(RuleId::new),
        ledger_entry_id: row
            .try_get::<Option<String>, _>("ledger_entry_id")?
            .map(LedgerEntryId::new),
        test: row.try_get("test")?,
        seq: row.try_get("seq")?,
    })
}
