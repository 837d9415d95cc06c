//! Replays: logged items run again, in event-time order, through the current or a draft
//! mapping and rule set. A dry run reads and never writes; an applied replay makes each change
//! through the store's usual paths (a commit for an item processed anew, a replay change for
//! an accepted event whose awards change), each at most once.
//!
//! Limits are evaluated as live ingestion would have in event-time order: the usage an item
//! sees is the member's stored usage, less what the replay's accepted events not yet reached
//! contributed to it (they come later in time), plus (in a dry run, where nothing is written)
//! what the replay changed so far. What a replay keeps in memory is one page of items, and
//! per member met its balance, the replayed events of its not yet reached, and the usage it
//! changed: never the log whole.

use super::cache::LoadedConnector;
use super::Engine;
use crate::auth::Authenticated;
use crate::connector::EventType;
use crate::error::{Error, Result};
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId, ReplayId, RuleId};
use crate::ledger::{EntryKind, ItemStatus, LedgerEntry, LogEntry, PageRequest};
use crate::mapping::{Document, JsonataMapping};
use crate::member::{Identifier, IgnoredReason};
use crate::replay::{
    subtract_usage, MemberChange, Outcome, ReplayApplied, ReplayChange, ReplayEnd, ReplayProgress,
    ReplayRecord, ReplayReport, ReplayScope, ReplaySpec, ReplayState, ReportBuilder,
};
use crate::reversal::usage_of;
use crate::rules::{
    apply_usage, Award, PointsRule, Rule, RuleDefinition, RuleSet, RuleSpec, TraceEntry, Usage,
    UsageCount, UsageKey,
};
use crate::store::{CommitBatch, PendingItem};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Items read from the store at a time.
const PAGE_SIZE: usize = 500;
/// The rules a draft rule set may hold.
const MAX_DRAFT_RULES: usize = 100;

/// What a replay runs with: the connector with the replay's mapping and rules, and its scope.
struct ReplayPlan {
    loaded: LoadedConnector,
    scope: ReplayScope,
}

impl Engine {
    /// Checks a replay request (connector, mapping, rules) and records it as a running job,
    /// its scope fixed now: items received before this moment (or `to`, if earlier).
    pub async fn create_replay(
        &self,
        program: &ProgramId,
        spec: ReplaySpec,
    ) -> Result<ReplayRecord> {
        let now = self.now();
        let until = spec.to.map_or(now, |to| to.min(now));
        if let (Some(from), Some(to)) = (spec.from, spec.to) {
            if to <= from {
                return Err(Error::invalid("/to", "to must be after from"));
            }
        }
        if spec
            .rules
            .as_ref()
            .is_some_and(|r| r.len() > MAX_DRAFT_RULES)
        {
            return Err(Error::invalid(
                "/rules",
                format!("a draft holds at most {MAX_DRAFT_RULES} rules"),
            ));
        }
        if spec.statuses.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(Error::invalid(
                "/statuses",
                "statuses must name at least one status",
            ));
        }
        self.replay_plan(program, &spec, until).await?;
        let record = ReplayRecord {
            id: ReplayId::generate(),
            program_id: program.clone(),
            spec,
            until,
            state: ReplayState::Running,
            processed: 0,
            total: 0,
            report: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        self.store.put_replay(&record).await?;
        Ok(record)
    }

    pub async fn get_replay(&self, program: &ProgramId, id: &ReplayId) -> Result<ReplayRecord> {
        self.store
            .get_replay(program, id)
            .await?
            .ok_or(Error::NotFound { what: "replay" })
    }

    /// Marks a running replay cancelled; the process running it stops at its next page. A
    /// replay that ended already is left as it is.
    pub async fn cancel_replay(&self, program: &ProgramId, id: &ReplayId) -> Result<ReplayRecord> {
        let mut record = self.get_replay(program, id).await?;
        if record.state == ReplayState::Running {
            record.state = ReplayState::Cancelled;
            record.updated_at = self.now();
            self.store.put_replay(&record).await?;
        }
        Ok(record)
    }

    /// The replays left `running` by a process that stopped: a server resumes them at
    /// start-up with [`Engine::run_recorded_replay`] (applying again is harmless: every
    /// change is made at most once).
    pub async fn running_replays(&self) -> Result<Vec<ReplayRecord>> {
        Ok(self.store.running_replays().await?)
    }

    /// Runs a recorded replay to its end and records how it ended (done with its report,
    /// cancelled with what it did so far, or failed with the error), its progress stored
    /// page by page. Returns the final record, or the error that kept it from being stored
    /// (the record then stays `running`, and is resumed at the next start).
    pub async fn run_recorded_replay(
        &self,
        mut record: ReplayRecord,
        progress: &ReplayProgress,
    ) -> Result<ReplayRecord> {
        let outcome = self.run_replay(&record, progress).await;
        // Re-read: another process may have cancelled it, or (running it too, after a
        // restart) ended it; an end recorded elsewhere stands.
        if let Some(stored) = self
            .store
            .get_replay(&record.program_id, &record.id)
            .await?
        {
            if matches!(stored.state, ReplayState::Done | ReplayState::Failed) {
                return Ok(stored);
            }
            record.state = stored.state;
        }
        record.processed = progress.processed();
        record.total = progress.total();
        record.updated_at = self.now();
        match outcome {
            Ok(ReplayEnd::Done(report)) if record.state == ReplayState::Running => {
                record.report = Some(report);
                record.state = ReplayState::Done;
            }
            Ok(ReplayEnd::Done(report) | ReplayEnd::Cancelled(report)) => {
                record.report = Some(report);
                record.state = ReplayState::Cancelled;
            }
            Err(error) => {
                record.state = ReplayState::Failed;
                record.error = Some(error.to_string());
            }
        }
        self.store.put_replay(&record).await?;
        Ok(record)
    }

    /// Runs a replay (a dry run, or applied if its spec says so) and returns its report;
    /// `progress` counts the items and stops the run when cancelled. Applying again, or at
    /// the same time elsewhere, changes nothing more.
    pub async fn run_replay(
        &self,
        record: &ReplayRecord,
        progress: &ReplayProgress,
    ) -> Result<ReplayEnd> {
        let plan = self
            .replay_plan(&record.program_id, &record.spec, record.until)
            .await?;
        let total = self.store.replay_count(&plan.scope).await?;
        progress.total.store(total, Ordering::Relaxed);
        let mut reader = self.store.replay_reader(&plan.scope, PAGE_SIZE).await?;
        let mut run = Run {
            engine: self,
            replay: record.id.clone(),
            apply: record.spec.apply,
            rules: plan.loaded.rules.clone(),
            plan,
            members: HashMap::new(),
            identities: HashMap::new(),
            seen_keys: HashSet::new(),
            key_hasher: foldhash::fast::RandomState::default(),
            report: ReportBuilder::new(record.spec.apply),
        };
        loop {
            if progress.is_cancelled() {
                return Ok(ReplayEnd::Cancelled(run.finish()));
            }
            let page = reader.next_page().await?;
            if page.is_empty() {
                break;
            }
            for entry in page {
                run.item(entry).await?;
                progress.processed.fetch_add(1, Ordering::Relaxed);
            }
            self.record_progress(record, progress).await?;
        }
        Ok(ReplayEnd::Done(run.finish()))
    }

    /// Stores the progress of a recorded replay, and notices a cancellation recorded by any
    /// process.
    async fn record_progress(
        &self,
        record: &ReplayRecord,
        progress: &ReplayProgress,
    ) -> Result<()> {
        let Some(mut stored) = self
            .store
            .get_replay(&record.program_id, &record.id)
            .await?
        else {
            // Not a recorded replay (an embedder's direct run): nothing to store.
            return Ok(());
        };
        if stored.state != ReplayState::Running {
            progress.cancel();
            return Ok(());
        }
        stored.processed = progress.processed();
        stored.total = progress.total();
        stored.updated_at = self.now();
        self.store.put_replay(&stored).await?;
        Ok(())
    }

    /// The connector with the replay's mapping and rules, and the scope it reads.
    async fn replay_plan(
        &self,
        program: &ProgramId,
        spec: &ReplaySpec,
        until: DateTime<Utc>,
    ) -> Result<ReplayPlan> {
        let connector = self
            .get_connector(program, &spec.connector_id)
            .await
            .map_err(|_| {
                Error::invalid("/connectorId", "no connector with this id in this program")
            })?;
        let program_settings = self.get_program(program).await?;
        let mapping =
            JsonataMapping::compile(spec.mapping.as_deref().unwrap_or(&connector.mapping))
                .map_err(Error::InvalidMapping)?;
        let rules = match &spec.rules {
            Some(drafts) => self.draft_rules(program, &connector.id, drafts).await?,
            None => self.store.list_rules(program, Some(&connector.id)).await?,
        };
        let scope = ReplayScope {
            program: program.clone(),
            connector: connector.id.clone(),
            since: spec.from.map(crate::clock::stored_precision),
            until: crate::clock::stored_precision(until),
            statuses: spec
                .statuses
                .clone()
                .unwrap_or_else(|| ItemStatus::ALL.to_vec()),
        };
        Ok(ReplayPlan {
            loaded: LoadedConnector {
                program: program_settings,
                connector,
                mapping: Arc::new(mapping),
                rules: Arc::new(RuleSet::new(rules)),
                loaded_at: self.now(),
                mapping_micros: AtomicU64::new(0),
                refreshing: AtomicBool::new(false),
            },
            scope,
        })
    }

    /// A draft rule set: each body an existing rule (`{"id"}` alone), an existing rule as
    /// written here (`id` and fields), or a new rule (no `id`).
    async fn draft_rules(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
        drafts: &[Value],
    ) -> Result<Vec<Rule>> {
        let stored = self.store.list_rules(program, Some(connector)).await?;
        let now = self.now();
        let mut rules = Vec::with_capacity(drafts.len());
        for (index, draft) in drafts.iter().enumerate() {
            let path = format!("/rules/{index}");
            let Some(fields) = draft.as_object() else {
                return Err(Error::invalid(path, "a rule must be an object"));
            };
            let mut fields = fields.clone();
            let existing = match fields.remove("id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(
                    stored
                        .iter()
                        .find(|r| r.id.as_str() == id)
                        .ok_or_else(|| {
                            Error::invalid(
                                format!("{path}/id"),
                                "no rule of this connector has this id",
                            )
                        })?
                        .clone(),
                ),
                Some(_) => return Err(Error::invalid(format!("{path}/id"), "an id is a string")),
            };
            if let (Some(rule), true) = (&existing, fields.is_empty()) {
                rules.push(rule.clone());
                continue;
            }
            fields
                .entry("connectorId")
                .or_insert_with(|| Value::String(connector.to_string()));
            let spec: RuleSpec = serde_json::from_value(Value::Object(fields))
                .map_err(|e| Error::invalid(path.clone(), e.to_string()))?;
            let spec = spec.at_stored_precision();
            if spec.connector_id != *connector {
                return Err(Error::invalid(
                    format!("{path}/connectorId"),
                    "a replay's rules are its connector's",
                ));
            }
            let definition = self
                .rule_from_spec(program, &spec)
                .await
                .map_err(|e| match e {
                    Error::Invalid {
                        path: inner,
                        message,
                    } => Error::invalid(format!("{path}{inner}"), message),
                    other => other,
                })?;
            let (id, created_at) = match existing {
                Some(rule) => (rule.id, rule.created_at),
                None => (RuleId::generate(), now),
            };
            rules.push(Rule::written(
                id,
                program.clone(),
                spec,
                definition,
                created_at,
                now,
            ));
        }
        Ok(rules)
    }
}

/// A member as a replay sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MemberKey {
    Known(MemberId),
    /// Not enrolled yet: a dry run would enrol it.
    New(Identifier),
}

/// One accepted event of the replay, of a member met, not reached yet.
#[derive(Debug, Default)]
struct ScopedEvent {
    /// What its awards count toward the limits now.
    contribution: Vec<(UsageKey, UsageCount)>,
    /// Its awards now (net of what replays took back), by rule.
    awards: Vec<Award>,
    /// A refund or an admin took some back: replaying it could give that back.
    reversed_since: bool,
}

#[derive(Debug, Default)]
struct MemberState {
    balance: i64,
    delta: i64,
    /// The member's accepted events in the replay not reached yet, and the sum of their
    /// contributions (the usage the items before them must not see).
    ahead: HashMap<EventId, ScopedEvent>,
    ahead_usage: Usage,
    /// Dry run: what the replay changed in the member's usage so far.
    overlay: Usage,
}

/// One run of a replay.
struct Run<'a> {
    engine: &'a Engine,
    replay: ReplayId,
    apply: bool,
    plan: ReplayPlan,
    rules: Arc<RuleSet>,
    members: HashMap<MemberKey, MemberState>,
    /// Identifiers met, and the member each names (if any).
    identities: HashMap<Identifier, Option<MemberId>>,
    /// Dry run: the keys items processed anew would claim, hashed (64 bits a key).
    seen_keys: HashSet<u64>,
    key_hasher: foldhash::fast::RandomState,
    report: ReportBuilder,
}

/// What the mapping makes of an item now.
enum Remapped {
    /// Not an event (rejected) or about nobody (ignored): as its log entry says.
    Settled(Box<LogEntry>),
    Award(Box<PendingItem>),
    Refund(Box<PendingItem>),
}

fn before_of(entry: &LogEntry) -> Outcome {
    Outcome {
        status: entry.status,
        points: entry.points,
        awards: entry.awards.clone(),
        reason: entry.reason.clone(),
        error: entry.error.clone(),
        member_id: entry.member_id.clone(),
        trace: entry.trace.clone(),
        event_id: None,
    }
}

fn settled_outcome(entry: &LogEntry) -> Outcome {
    Outcome {
        event_id: None,
        ..before_of(entry)
    }
}

fn refused(settled: &LogEntry) -> Outcome {
    Outcome {
        points: 0,
        awards: Vec::new(),
        ..settled_outcome(settled)
    }
}

fn sorted(mut awards: Vec<Award>) -> Vec<Award> {
    awards.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
    awards
}

impl Run<'_> {
    fn finish(self) -> ReplayReport {
        self.report
            .finish(self.members.into_iter().map(|(key, state)| MemberChange {
                member_id: match key {
                    MemberKey::Known(id) => Some(id),
                    MemberKey::New(_) => None,
                },
                before: state.balance,
                after: state.balance + state.delta,
            }))
    }

    async fn item(&mut self, entry: LogEntry) -> Result<()> {
        let before = before_of(&entry);
        let refunds = self.plan.loaded.connector.event_type == EventType::EcommerceRefund;
        if entry.raw_truncated || (refunds && entry.status == ItemStatus::Accepted) {
            self.report.skip(&entry.id, before);
            return Ok(());
        }
        let remapped = self.remap(&entry);
        if entry.status == ItemStatus::Accepted {
            return self.accepted_again(entry, before, remapped).await;
        }
        match remapped {
            Remapped::Settled(settled) => {
                let after = settled_outcome(&settled);
                self.report.record(&entry.id, before, after);
            }
            Remapped::Refund(item) => self.refund_anew(&entry, before, *item).await?,
            Remapped::Award(item) => self.award_anew(&entry, before, *item).await?,
        }
        Ok(())
    }

    /// Maps the raw item again (synchronous: the document never crosses an await).
    fn remap(&self, entry: &LogEntry) -> Remapped {
        let loaded = &self.plan.loaded;
        let engine = self.engine;
        let mut settled = entry.clone();
        settled.status = ItemStatus::Rejected;
        settled.reason = None;
        settled.points = 0;
        settled.awards.clear();
        settled.trace = None;
        settled.member_id = None;
        let body = Document::parse_body(
            entry.raw.as_str().as_bytes(),
            1,
            loaded.mapping.projection(),
        );
        let body = match body {
            Ok(body) if !body.bulk && body.items.len() == 1 => body,
            _ => {
                settled.error = Some(crate::event::ItemError::validation(
                    "",
                    "the logged item is not one JSON object",
                ));
                return Remapped::Settled(Box::new(settled));
            }
        };
        let authenticated = Authenticated {
            // The key the item had (from its sender's delivery id, say), unless the mapping
            // names one.
            delivery_id: entry.client_event_id.clone(),
            delivery_id_field: None,
        };
        let prepared = engine.prepare(
            loaded,
            loaded.mapping.as_ref(),
            body,
            &authenticated,
            entry.test,
            entry.received_at,
        );
        let Ok(Some(mut item)) = prepared.map(|items| items.into_iter().next()) else {
            settled.error = Some(crate::event::ItemError {
                code: "mapping_error".into(),
                message: "the item could not be mapped again".into(),
                path: None,
            });
            return Remapped::Settled(Box::new(settled));
        };
        item.entry.id = entry.id.clone();
        if item.refund.is_some() {
            Remapped::Refund(Box::new(item))
        } else if item.candidate.is_some() {
            Remapped::Award(Box::new(item))
        } else {
            Remapped::Settled(Box::new(item.entry))
        }
    }

    /// The state of a member, read from the store when first met.
    async fn member(&mut self, key: &MemberKey) -> Result<&mut MemberState> {
        if !self.members.contains_key(key) {
            let state = match key {
                MemberKey::Known(id) => self.load_member(id).await?,
                MemberKey::New(_) => MemberState::default(),
            };
            self.members.insert(key.clone(), state);
        }
        Ok(self.members.get_mut(key).expect("inserted above"))
    }

    async fn load_member(&self, id: &MemberId) -> Result<MemberState> {
        let store = &self.engine.store;
        let scope = &self.plan.scope;
        let mut state = MemberState {
            balance: store
                .get_member(&scope.program, id)
                .await?
                .map_or(0, |m| m.balance),
            ..Default::default()
        };
        if !scope.statuses.contains(&ItemStatus::Accepted) {
            return Ok(state);
        }
        // The member's accepted events in the replay, from the log.
        let filter = crate::ledger::EventFilter {
            connector_id: Some(scope.connector.clone()),
            status: Some(ItemStatus::Accepted),
            member_id: Some(id.clone()),
            since: scope.since,
            until: Some(scope.until),
            test: None,
        };
        let mut events = HashSet::new();
        let mut before = None;
        loop {
            let page = store
                .list_events(
                    &scope.program,
                    &filter,
                    PageRequest {
                        limit: crate::ledger::MAX_PAGE_SIZE,
                        before,
                    },
                )
                .await?;
            events.extend(page.items.iter().map(|e| e.id.clone()));
            match page.items.last() {
                Some(last) if page.next_cursor.is_some() => before = Some(last.seq),
                _ => break,
            }
        }
        if events.is_empty() {
            return Ok(state);
        }
        let entries = store.ledger_entries(&scope.program, id).await?;
        let mut by_event: HashMap<EventId, Vec<&LedgerEntry>> = HashMap::new();
        let mut award_event: HashMap<&crate::ids::LedgerEntryId, &EventId> = HashMap::new();
        for entry in &entries {
            if entry.kind != EntryKind::Award {
                continue;
            }
            if let Some(event) = entry.event_id.as_ref().filter(|e| events.contains(*e)) {
                by_event.entry(event.clone()).or_default().push(entry);
                award_event.insert(&entry.id, event);
            }
        }
        for entry in &entries {
            if let Some(event) = entry.reverses.as_ref().and_then(|a| award_event.get(a)) {
                if matches!(entry.kind, EntryKind::Reversal | EntryKind::Expiry) {
                    by_event.entry((*event).clone()).or_default().push(entry);
                }
            }
        }
        for (event, lines) in by_event {
            let lines: Vec<LedgerEntry> = lines.into_iter().cloned().collect();
            let contribution: Vec<(UsageKey, UsageCount)> = usage_of(&lines).into_iter().collect();
            let mut awards: Vec<Award> = Vec::new();
            let mut reversed_since = false;
            for award in lines.iter().filter(|l| l.kind == EntryKind::Award) {
                let mut left = award.points;
                for taker in lines.iter().filter(|l| {
                    l.kind == EntryKind::Reversal && l.reverses.as_ref() == Some(&award.id)
                }) {
                    if ReplayChange::is_replay_reason(taker.reason.as_deref()) {
                        left += taker.points;
                    } else {
                        reversed_since = true;
                    }
                }
                if left > 0 {
                    let rule = award.rule_id.clone().unwrap_or_else(|| RuleId::new(""));
                    match awards.iter_mut().find(|a| a.rule_id == rule) {
                        Some(a) => a.points += left,
                        None => awards.push(Award {
                            rule_id: rule,
                            points: left,
                        }),
                    }
                }
            }
            apply_usage(&mut state.ahead_usage, &contribution);
            state.ahead.insert(
                event,
                ScopedEvent {
                    contribution,
                    awards: sorted(awards),
                    reversed_since,
                },
            );
        }
        Ok(state)
    }

    /// The usage an item of `key` at `at` sees.
    async fn usage_for(&mut self, key: &MemberKey, at: DateTime<Utc>) -> Result<Usage> {
        let keys = self.rules.usage_keys(at);
        let mut usage = match key {
            MemberKey::Known(id) => {
                self.engine
                    .store
                    .usage(&self.plan.scope.program, id, &keys)
                    .await?
            }
            MemberKey::New(_) => Usage::default(),
        };
        let state = self.member(key).await?;
        for key in &keys {
            if let Some(ahead) = state.ahead_usage.get(key) {
                let entry = usage.entry(key.clone()).or_default();
                entry.count -= ahead.count;
                entry.points -= ahead.points;
            }
            if let Some(changed) = state.overlay.get(key) {
                usage.entry(key.clone()).or_default().add(*changed);
            }
        }
        Ok(usage)
    }

    /// An accepted event: its awards evaluated again; applied, changed awards are replaced.
    async fn accepted_again(
        &mut self,
        entry: LogEntry,
        mut before: Outcome,
        remapped: Remapped,
    ) -> Result<()> {
        let Some(member) = entry.member_id.clone() else {
            self.report.skip(&entry.id, before);
            return Ok(());
        };
        let key = MemberKey::Known(member.clone());
        // What its awards are now: they may have been changed by a replay before.
        let state = self.member(&key).await?;
        let scoped = state.ahead.get(&entry.id);
        if let Some(scoped) = scoped {
            before.awards = scoped.awards.clone();
            before.points = scoped.awards.iter().map(|a| a.points).sum();
        } else {
            before.awards = sorted(before.awards);
        }
        if scoped.is_some_and(|s| s.reversed_since) {
            self.leave_behind(&key, &entry.id);
            self.report.skip(&entry.id, before);
            return Ok(());
        }
        let occurred_at = entry.occurred_at.unwrap_or(entry.received_at);
        let (after, increments) = match remapped {
            Remapped::Award(item) => {
                let candidate = item
                    .candidate
                    .as_ref()
                    .expect("an award item has a candidate");
                let usage = self.usage_for(&key, candidate.occurred_at).await?;
                let evaluation = self.rules.evaluate(&candidate.event, occurred_at, &usage);
                let awards = sorted(evaluation.awards.clone());
                (
                    Outcome {
                        status: ItemStatus::Accepted,
                        points: evaluation.points(),
                        awards,
                        reason: None,
                        error: None,
                        member_id: Some(member.clone()),
                        trace: Some(evaluation.trace),
                        event_id: None,
                    },
                    evaluation.usage_increments,
                )
            }
            // An accepted event the mapping now refuses: it keeps its member, and its awards
            // go.
            Remapped::Settled(settled) => (refused(&settled), Vec::new()),
            Remapped::Refund(item) => (refused(&item.entry), Vec::new()),
        };
        let changed = after.awards != before.awards;
        let contribution = self.leave_behind(&key, &entry.id);
        if changed && self.apply {
            let change = ReplayChange {
                program: self.plan.scope.program.clone(),
                replay: self.replay.clone(),
                event: entry.id.clone(),
                member: member.clone(),
                awards: after.awards.clone(),
                rules: self.rules.clone(),
                occurred_at,
                test: entry.test,
                at: self.engine.now(),
            };
            match self.engine.store.apply_replay_change(change).await? {
                ReplayApplied::Done { points } => {
                    self.member(&key).await?.delta += points;
                }
                ReplayApplied::AlreadyApplied | ReplayApplied::UnknownEvent => {}
            }
        } else if changed {
            let state = self.member(&key).await?;
            state.delta += after.points - before.points;
            subtract_usage(&mut state.overlay, &contribution);
            apply_usage(&mut state.overlay, &increments);
        }
        self.report.record(&entry.id, before, after);
        Ok(())
    }

    /// An accepted event is reached: the items after it see its usage as stored (or as the
    /// replay changed it). Returns what it contributed.
    fn leave_behind(&mut self, key: &MemberKey, event: &EventId) -> Vec<(UsageKey, UsageCount)> {
        let Some(state) = self.members.get_mut(key) else {
            return Vec::new();
        };
        match state.ahead.remove(event) {
            Some(scoped) => {
                subtract_usage(&mut state.ahead_usage, &scoped.contribution);
                scoped.contribution
            }
            None => Vec::new(),
        }
    }

    fn key_hash(&self, client_event_id: &str) -> u64 {
        self.key_hasher.hash_one(client_event_id)
    }

    /// A rejected, ignored or duplicate item the mapping now makes an event.
    async fn award_anew(
        &mut self,
        entry: &LogEntry,
        before: Outcome,
        item: PendingItem,
    ) -> Result<()> {
        let candidate = item
            .candidate
            .clone()
            .expect("an award item has a candidate");
        let scope = self.plan.scope.clone();
        let store = self.engine.store.clone();
        // Its key: held by an accepted event, it is a duplicate, unless that event is this
        // very item processed anew by a replay.
        if let Some(holder) = store
            .find_accepted(&scope.connector, &candidate.client_event_id, entry.test)
            .await?
        {
            let held = store.get_event(&scope.program, &holder).await?;
            if let Some(held) = held.filter(|h| h.replayed_event_id.as_ref() == Some(&entry.id)) {
                if held.replay_id.as_ref() == Some(&self.replay) {
                    // This replay applied it before (it is being resumed).
                    let mut after = settled_outcome(&held);
                    after.event_id = Some(held.id.clone());
                    self.report.record(&entry.id, before, after);
                } else {
                    self.report.skip(&entry.id, before);
                }
                return Ok(());
            }
            let after = Outcome {
                status: ItemStatus::Duplicate,
                points: 0,
                awards: Vec::new(),
                reason: None,
                error: None,
                member_id: None,
                trace: None,
                event_id: None,
            };
            self.report.record(&entry.id, before, after);
            return Ok(());
        }
        let key_hash = self.key_hash(&candidate.client_event_id);
        if !self.apply && self.seen_keys.contains(&key_hash) {
            let after = Outcome {
                status: ItemStatus::Duplicate,
                points: 0,
                awards: Vec::new(),
                reason: None,
                error: None,
                member_id: None,
                trace: None,
                event_id: None,
            };
            self.report.record(&entry.id, before, after);
            return Ok(());
        }
        // Its member.
        let known = match self.identities.get(&candidate.identifier) {
            Some(known) => known.clone(),
            None => {
                let found = store
                    .find_member(&scope.program, &candidate.identifier)
                    .await?
                    .map(|m| m.id);
                self.identities
                    .insert(candidate.identifier.clone(), found.clone());
                found
            }
        };
        let key = match known {
            Some(id) => MemberKey::Known(id),
            None if self.plan.loaded.program.enroll_unknown_members => {
                MemberKey::New(candidate.identifier.clone())
            }
            None => {
                let after = Outcome {
                    status: ItemStatus::Ignored,
                    points: 0,
                    awards: Vec::new(),
                    reason: Some(IgnoredReason::UnknownMember.as_str().into()),
                    error: None,
                    member_id: None,
                    trace: None,
                    event_id: None,
                };
                self.report.record(&entry.id, before, after);
                return Ok(());
            }
        };
        let usage = self.usage_for(&key, candidate.occurred_at).await?;
        let evaluation = self
            .rules
            .evaluate(&candidate.event, candidate.occurred_at, &usage);
        let mut after = Outcome {
            status: ItemStatus::Accepted,
            points: evaluation.points(),
            awards: sorted(evaluation.awards.clone()),
            reason: None,
            error: None,
            member_id: match &key {
                MemberKey::Known(id) => Some(id.clone()),
                MemberKey::New(_) => None,
            },
            trace: Some(evaluation.trace.clone()),
            event_id: None,
        };
        if !self.apply {
            self.seen_keys.insert(key_hash);
            let state = self.member(&key).await?;
            state.delta += after.points;
            apply_usage(&mut state.overlay, &evaluation.usage_increments);
            self.report.record(&entry.id, before, after);
            return Ok(());
        }
        // Applied: committed as any new event, its key claimed as usual, with the awards
        // decided here (a rule set pinned to them), linked to the replay.
        let rules = Arc::new(pinned_rules(
            &self.rules,
            &evaluation.awards,
            &evaluation.trace,
        ));
        let batch = self.replayed_batch(entry, item, rules);
        let committed = store.commit(batch).await?;
        let Some(logged) = committed.into_iter().next() else {
            return Err(Error::Store(crate::error::StoreError::new(
                "a commit returned no entry",
            )));
        };
        after = Outcome {
            trace: after
                .trace
                .filter(|_| logged.status == ItemStatus::Accepted),
            event_id: Some(logged.id.clone()),
            ..settled_outcome(&logged)
        };
        after.awards = sorted(after.awards);
        if logged.status == ItemStatus::Accepted {
            if let (MemberKey::New(identifier), Some(id)) = (&key, &logged.member_id) {
                // Enrolled now: the member's next items find it.
                self.identities.insert(identifier.clone(), Some(id.clone()));
                let state = self.members.remove(&key).unwrap_or_default();
                self.members.insert(MemberKey::Known(id.clone()), state);
            }
            if let Some(id) = &logged.member_id {
                self.member(&MemberKey::Known(id.clone())).await?.delta += logged.points;
            }
        }
        self.report.record(&entry.id, before, after);
        Ok(())
    }

    /// A logged item processed anew, as a new event received now and linked to the replay
    /// and to the item it replays, in a batch of its own under `rules`.
    fn replayed_batch(
        &self,
        entry: &LogEntry,
        mut pending: PendingItem,
        rules: Arc<RuleSet>,
    ) -> CommitBatch {
        let now = self.engine.now();
        pending.entry.id = EventId::generate();
        pending.entry.received_at = now;
        pending.entry.replay_id = Some(self.replay.clone());
        pending.entry.replayed_event_id = Some(entry.id.clone());
        CommitBatch {
            program_id: self.plan.scope.program.clone(),
            connector_id: self.plan.scope.connector.clone(),
            test: entry.test,
            enroll_unknown_members: self.plan.loaded.program.enroll_unknown_members,
            rules,
            received_at: now,
            items: vec![pending],
        }
    }

    /// A refund the mapping now makes valid: what it would take back (dry run), or taken
    /// back through the usual refund path (applied).
    async fn refund_anew(
        &mut self,
        entry: &LogEntry,
        before: Outcome,
        item: PendingItem,
    ) -> Result<()> {
        let scope = self.plan.scope.clone();
        if !self.apply {
            let refund = item.refund.clone().expect("a refund item has a refund");
            let mut simulated = crate::engine::SimulatedItem {
                index: 0,
                status: ItemStatus::Accepted,
                reason: None,
                error: None,
                client_event_id: None,
                original_event_id: None,
                mapped: None,
                member: None,
                points: 0,
                awards: Vec::new(),
                trace: Vec::new(),
                warnings: Vec::new(),
            };
            let mut seen = HashSet::new();
            self.engine
                .simulate_refund(
                    &scope.program,
                    &scope.connector,
                    entry.test,
                    &refund,
                    &mut seen,
                    &mut simulated,
                )
                .await?;
            let after = Outcome {
                status: simulated.status,
                points: simulated.points,
                awards: simulated.awards,
                reason: simulated.reason,
                error: None,
                member_id: None,
                trace: None,
                event_id: None,
            };
            self.report.record(&entry.id, before, after);
            return Ok(());
        }
        let batch = self.replayed_batch(entry, item, self.rules.clone());
        let committed = self.engine.store.commit(batch).await?;
        if let Some(logged) = committed.into_iter().next() {
            if let Some(id) = logged
                .member_id
                .clone()
                .filter(|_| logged.status == ItemStatus::Accepted)
            {
                self.member(&MemberKey::Known(id)).await?.delta += logged.points;
            }
            let after = Outcome {
                event_id: Some(logged.id.clone()),
                ..settled_outcome(&logged)
            };
            self.report.record(&entry.id, before, after);
        }
        Ok(())
    }
}

/// A rule set that awards exactly `awards` (a fixed number of points a rule, no condition, no
/// limit), with the names and pending days of the rules they come from: an item processed
/// anew is committed with the awards its replay decided, in event-time order, not with what
/// the limits say at the moment of its commit.
fn pinned_rules(rules: &RuleSet, awards: &[Award], trace: &[TraceEntry]) -> RuleSet {
    let pinned = awards
        .iter()
        .enumerate()
        .map(|(index, award)| {
            let name = trace
                .iter()
                .find(|t| t.rule_id == award.rule_id)
                .map_or_else(|| award.rule_id.to_string(), |t| t.rule_name.clone());
            let epoch = DateTime::<Utc>::UNIX_EPOCH;
            Rule {
                id: award.rule_id.clone(),
                program_id: ProgramId::new(""),
                connector_id: ConnectorId::new(""),
                name,
                conditions: Value::Null,
                points: Value::Null,
                limits: Value::Null,
                priority: i32::try_from(index).unwrap_or(i32::MAX),
                stop_other_rules: false,
                pending_days: rules.pending_days(&award.rule_id),
                active_from: None,
                active_until: None,
                created_at: epoch,
                updated_at: epoch,
                definition: RuleDefinition {
                    condition: None,
                    points: PointsRule::Fixed(award.points),
                    limits: Vec::new(),
                },
            }
        })
        .collect();
    RuleSet::new(pinned)
}
