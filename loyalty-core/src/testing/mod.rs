//! The storage conformance suite: one set of behaviours every [`Store`] must show, driven
//! through the [`Engine`] exactly as the HTTP layer drives it. A store's tests run it with
//! [`store_conformance_suite!`](crate::store_conformance_suite):
//!
//! ```ignore
//! async fn new_store() -> Arc<dyn Store> { Arc::new(MemoryStore::new()) }
//! loyalty_core::store_conformance_suite!(new_store);
//! ```

mod feed;
mod ingest;
mod points;
mod reads;
mod refunds;
mod replays;
mod webhooks;

pub use feed::*;
pub use ingest::*;
pub use points::*;
pub use reads::*;
pub use refunds::*;
pub use replays::*;
pub use webhooks::*;

use crate::clock::FixedClock;
use crate::connector::ConnectorSpec;
use crate::engine::{Engine, IncomingRequest, IngestResponse, Limits};
use crate::ids::{ConnectorId, MemberId, ProgramId};
use crate::ledger::ItemStatus;
use crate::program::ProgramSpec;
use crate::rules::RuleSpec;
use crate::store::Store;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Generates one `#[tokio::test]` per behaviour of the suite, each with a fresh store from
/// `$make` (an async fn returning `Arc<dyn Store>`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:path) => {
        $crate::store_conformance_suite!(@tests $make;
            accepts_and_awards_points,
            duplicates_award_once,
            live_and_test_are_separate_namespaces,
            rejected_and_ignored_items_do_not_claim_their_id,
            unknown_members_are_ignored_when_enrolment_is_off,
            bulk_items_are_processed_one_by_one,
            concurrent_deliveries_accept_once_and_respect_limits,
            point_limits_cut_the_last_award,
            purge_removes_only_test_data,
            test_members_become_live,
            event_log_filters_and_pages,
            activity_lists_events_and_ledger_newest_first,
            programs_are_isolated,
            connectors_and_rules_round_trip,
            what_is_stored_comes_back_as_written,
            balances_equal_ledger_sums,
            adjustments_say_why_and_happen_once,
            concurrent_adjustments_with_one_key_happen_once,
            admin_reversals_take_back_what_is_left_and_free_the_limit,
            concurrent_reversals_never_take_more_than_was_given,
            purge_takes_the_reversals_of_what_it_removes,
            allowance_says_what_is_left_of_each_limit,
            expired_points_leave_the_balance_and_the_sweep_writes_them_once,
            pending_points_are_spendable_after_their_delay,
            refunds_reverse_what_the_purchase_earned,
            concurrent_refunds_never_reverse_more_than_was_earned,
            event_errors_are_grouped_by_code_and_path,
            dry_runs_report_and_store_nothing,
            applied_replays_change_things_once,
            backtests_of_draft_rules_replace_awards_once,
            concurrent_replays_of_one_day_award_once,
            cancelled_replays_stop,
            webhooks_round_trip_and_rotate_their_secret,
            deliveries_move_the_cursor_once,
            a_members_messages_go_out_one_at_a_time_in_order,
            an_expired_lease_is_claimed_again_and_the_late_worker_records_nothing,
            concurrent_workers_never_claim_one_delivery_twice,
            a_manual_retry_sends_a_delivery_again,
            deleting_an_endpoint_drops_its_deliveries,
            committed_changes_become_deliveries_once
        );
        $crate::store_feed_conformance_suite!($make);
    };
    (@tests $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::testing::$name($make().await).await;
            }
        )*
    };
}

/// The change feed's behaviours (part of [`store_conformance_suite!`]).
#[macro_export]
macro_rules! store_feed_conformance_suite {
    ($make:path) => {
        $crate::store_conformance_suite!(@tests $make;
            the_feed_has_every_change_once_in_commit_order,
            the_feed_follows_commit_order_per_member_under_concurrency,
            a_subscription_gets_what_is_committed_after_it,
            a_long_ledger_has_each_entrys_balance_in_every_read
        );
    };
}

pub const TOKEN: &str = "s3cret-token";
pub const SEED_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;

/// The time every suite test runs at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// A program with the seed "Article Read" connector (query token) and, if `limits` is given,
/// the seed rule: 10 points for a sport article when `total >= 5`.
#[derive(Debug)]
pub struct Fixture {
    pub engine: Arc<Engine>,
    pub clock: Arc<FixedClock>,
    pub program: ProgramId,
    pub connector: ConnectorId,
}

impl Fixture {
    pub async fn new(store: Arc<dyn Store>, limits: Option<Value>) -> Self {
        Self::with_program(
            store,
            limits,
            ProgramSpec {
                name: "Readers".into(),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn with_program(
        store: Arc<dyn Store>,
        limits: Option<Value>,
        spec: ProgramSpec,
    ) -> Self {
        let clock = Arc::new(FixedClock::new(now()));
        // Generous mapping time: the suite runs on busy CI machines, and a mapping timeout
        // is not what it tests.
        let defaults = Limits::default();
        let engine_limits = Limits {
            mapping: crate::mapping::MappingLimits {
                timeout: std::time::Duration::from_secs(5),
                ..defaults.mapping
            },
            max_request_mapping_time: std::time::Duration::from_secs(60),
            ..defaults
        };
        let engine = Arc::new(Engine::with_limits(store, clock.clone(), engine_limits));
        let (program, _) = engine.create_program(spec).await.unwrap();
        let connector = engine
            .create_connector(&program.id, article_connector_spec())
            .await
            .unwrap();
        let fixture = Self {
            engine,
            clock,
            program: program.id,
            connector: connector.id,
        };
        if let Some(limits) = limits {
            fixture.add_rule("Sport readers", limits).await;
        }
        fixture
    }

    pub async fn add_rule(&self, name: &str, limits: Value) {
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": name,
            "connectorId": self.connector,
            "conditions": {"all": [
                {"tag": "theme", "op": "eq", "value": "sport"},
                {"counter": "total", "op": "gte", "value": 5}
            ]},
            "points": {"fixed": 10},
            "limits": limits,
        }))
        .unwrap();
        self.engine.create_rule(&self.program, spec).await.unwrap();
    }

    pub async fn send(&self, body: &str, test: bool) -> IngestResponse {
        self.engine
            .ingest(IncomingRequest {
                connector_id: self.connector.as_str(),
                query: "token=s3cret-token",
                headers: &[],
                body: body.as_bytes(),
                test,
            })
            .await
            .unwrap()
    }

    pub async fn balance(&self, email: &str) -> Option<i64> {
        self.engine
            .find_member(&self.program, "email", email)
            .await
            .ok()
            .map(|m| m.balance)
    }

    pub async fn member(&self, email: &str) -> MemberId {
        self.engine
            .find_member(&self.program, "email", email)
            .await
            .unwrap()
            .id
    }
}

pub fn article_connector_spec() -> ConnectorSpec {
    serde_json::from_value(json!({
        "name": "Article Read",
        "eventType": "custom.basic",
        "auth": {"type": "queryToken", "param": "token", "token": TOKEN},
        "mapping": SEED_MAPPING,
    }))
    .unwrap()
}

/// The seed rule of docs/http-api.md on `connector`: 10 points for a sport article when `total >= 5`,
/// at most `per_day` times a day.
pub fn seed_rule_spec(connector: &ConnectorId, per_day: i64) -> RuleSpec {
    serde_json::from_value(json!({
        "name": "Sport readers",
        "connectorId": connector,
        "conditions": {"all": [
            {"tag": "theme", "op": "eq", "value": "sport"},
            {"counter": "total", "op": "gte", "value": 5}]},
        "points": {"fixed": 10},
        "limits": [{"count": per_day, "per": "day"}]
    }))
    .unwrap()
}

/// An "Article Read" payload as the seed scenario sends it.
pub fn article(event_id: &str, email: &str, theme: &str, total: i64) -> Value {
    json!({
        "eventId": event_id,
        "timestamp": "2026-11-26T11:00:00Z",
        "profile": {"email": email},
        "article": {"theme": theme, "title": "A match"},
        "totalArticlesRead": total
    })
}

pub(crate) fn statuses(response: &IngestResponse) -> Vec<ItemStatus> {
    response.results.iter().map(|r| r.status()).collect()
}
