//! Earning rules: conditions on tags, counters and purchase fields; points; limits per member
//! and calendar period; and their evaluation, a pure function of the event, the rules, the
//! member's usage and the time, which explains itself in a trace.
//!
//! `spec`: rules as written and their compiled definition (conditions, points, limits);
//! `build`: rules built from Rust types, written in the same form;
//! `eval`: evaluation and its trace; `usage`: calendar periods and what a member used of
//! each limit.

mod build;
mod eval;
mod spec;
mod usage;

pub use eval::{Award, Evaluation, RuleSet, TraceEntry};
pub use spec::{
    Condition, ItemField, NumberTest, PointsRule, Rule, RuleDefinition, RuleSpec, TextTest,
};
pub use usage::{apply_usage, Limit, Period, Usage, UsageCount, UsageKey};

/// The largest award of one rule for one event; keeps sums far from overflow.
pub const MAX_AWARD_POINTS: i64 = 1_000_000_000_000;

#[cfg(test)]
mod tests;
