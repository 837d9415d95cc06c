//! Time as a dependency, so that periods, event age and signature tolerance are testable.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use std::fmt::Debug;
use std::sync::Mutex;

/// Where the engine reads the current time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Truncated to microseconds, the precision PostgreSQL keeps: the engine passes every instant
/// it stores or compares with stored ones through this (its clock's reading, whatever the
/// clock, in `Engine::now`; an event's timestamp; a rule's window; a log filter's bounds), so
/// that every store returns the instants it was given, and a response made before storing says
/// what a later read will.
pub fn stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A clock that only moves when told to: for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
