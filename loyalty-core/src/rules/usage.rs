//! Calendar periods in UTC, limits, and what a member used of each rule in each period.

use crate::ids::RuleId;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A calendar period in UTC (weeks start on Monday).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
    Year,
    Lifetime,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
        Period::Lifetime,
    ];

    /// The key of the period holding `at`: `d2026-11-26`, `w2026-W48`, `m2026-11`, `y2026`, `lifetime`.
    pub fn key(self, at: DateTime<Utc>) -> String {
        // Digits written by hand: keys are built for every limit of every event, and
        // `format!` (let alone chrono's `format`, which parses its pattern each call) cost
        // more than the rest of a rule's evaluation.
        let mut key = String::with_capacity(11);
        let (letter, year, rest): (char, i32, &[u32]) = match self {
            Period::Day => ('d', at.year(), &[at.month(), at.day()]),
            Period::Week => {
                let week = at.iso_week();
                key.push('w');
                push_digits(&mut key, week.year(), 4);
                key.push_str("-W");
                push_digits(&mut key, week.week() as i32, 2);
                return key;
            }
            Period::Month => ('m', at.year(), &[at.month()]),
            Period::Year => ('y', at.year(), &[]),
            Period::Lifetime => return "lifetime".into(),
        };
        key.push(letter);
        push_digits(&mut key, year, 4);
        for part in rest {
            key.push('-');
            push_digits(&mut key, *part as i32, 2);
        }
        key
    }
}

impl Period {
    /// When the period holding `at` ends and the next begins (UTC midnight; weeks on Monday);
    /// `None` for a lifetime.
    pub fn next_start(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let day = at.date_naive();
        let next = match self {
            Period::Day => day.succ_opt()?,
            Period::Week => {
                day + chrono::Days::new(7 - u64::from(day.weekday().num_days_from_monday()))
            }
            Period::Month => {
                let (year, month) = if day.month() == 12 {
                    (day.year() + 1, 1)
                } else {
                    (day.year(), day.month() + 1)
                };
                chrono::NaiveDate::from_ymd_opt(year, month, 1)?
            }
            Period::Year => chrono::NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)?,
            Period::Lifetime => return None,
        };
        Some(next.and_hms_opt(0, 0, 0)?.and_utc())
    }
}

/// `value` in decimal, zero-padded to `width` digits (as `{:0width$}` would).
fn push_digits(out: &mut String, value: i32, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 10];
    let mut n = value.unsigned_abs();
    let mut len = 0;
    while n > 0 || len == 0 {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    let width = width.saturating_sub(usize::from(value < 0));
    for _ in len..width {
        out.push('0');
    }
    for digit in digits[..len].iter().rev() {
        out.push(char::from(*digit));
    }
}

/// A limit per member per period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// At most this many awards.
    Count { max: i64, per: Period },
    /// At most this many points; the last award is cut to fit.
    Points { max: i64, per: Period },
}

/// Usage of one rule by one member in one period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsageKey {
    pub rule_id: RuleId,
    pub period: String,
}

/// How often, and for how many points, a rule awarded a member in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    pub count: i64,
    pub points: i64,
}

/// A member's usage, by key. Missing keys are zero. Hashed with foldhash, not SipHash: it is
/// read for every rule limit of every event (the keys are rule ids and period names, never a
/// sender's text, and foldhash seeds every map at random anyway).
pub type Usage = HashMap<UsageKey, UsageCount, foldhash::fast::RandomState>;

/// Adds an evaluation's increments to a usage map (for the next event of the same member).
pub fn apply_usage(usage: &mut Usage, increments: &[(UsageKey, UsageCount)]) {
    for (key, add) in increments {
        usage.entry(key.clone()).or_default().add(*add);
    }
}

impl UsageCount {
    /// Counts `other` too: the one place usage is added up.
    pub fn add(&mut self, other: UsageCount) {
        self.count += other.count;
        self.points += other.points;
    }
}

impl Limit {
    pub fn period(self) -> Period {
        match self {
            Limit::Count { per, .. } | Limit::Points { per, .. } => per,
        }
    }
}

pub(super) fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Year => "year",
        Period::Lifetime => "lifetime",
    }
}
