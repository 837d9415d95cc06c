//! When a failed message is tried again: exponential backoff with jitter, for more than a day.

use chrono::Duration;

/// The delays before each retry. The standard one: 5 s, 15 s, 1 min, 5 min, 30 min, 1 h, 2 h,
/// 4 h, 8 h, 8 h, 8 h (about 31.6 hours in all), each delay moved at random by up to a fifth
/// either way, so that messages that failed together (a receiver down) do not all come back at
/// the same second. Even with every delay at its shortest the last retry comes after 25 hours.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    /// The largest share of a delay that jitter adds or takes away (0.2: ±20 %).
    jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetrySchedule {
    pub fn standard() -> Self {
        let seconds = [
            5, 15, 60, 300, 1800, 3600, 7200, 14_400, 28_800, 28_800, 28_800,
        ];
        Self {
            delays: seconds.into_iter().map(Duration::seconds).collect(),
            jitter: 0.2,
        }
    }

    /// The standard schedule with every delay multiplied by `factor` (tests: 0.001 makes the
    /// first retries come after 5 and 15 ms; the order and the number of attempts stay).
    pub fn scaled(factor: f64) -> Self {
        let standard = Self::standard();
        Self {
            delays: standard
                .delays
                .iter()
                .map(|delay| {
                    let micros = delay.num_microseconds().unwrap_or(i64::MAX) as f64 * factor;
                    Duration::microseconds(micros.max(1.0) as i64)
                })
                .collect(),
            jitter: standard.jitter,
        }
    }

    /// How many attempts a message gets before it is given up: the first and every retry.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delay before the next attempt after `failed_attempts` attempts have failed (1 after
    /// the first), or `None` when the message is given up. `unit` is a random number in
    /// [0, 1) that places the delay within its jitter.
    pub fn delay_after(&self, failed_attempts: u32, unit: f64) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        let micros = base.num_microseconds().unwrap_or(i64::MAX) as f64 * factor;
        Some(Duration::microseconds(micros.max(1.0) as i64))
    }

    /// [`Self::delay_after`] with a fresh random unit.
    pub fn delay_after_random(&self, failed_attempts: u32) -> Option<Duration> {
        self.delay_after(failed_attempts, random_unit())
    }
}

/// A random number in [0, 1) from the OS generator (through uuid, which the core already uses
/// for ids and secrets).
fn random_unit() -> f64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let bits = u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[7], bytes[9],
    ]);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retries_come_after_about_5_and_15_seconds_then_grow() {
        let schedule = RetrySchedule::standard();
        let middle = |n| schedule.delay_after(n, 0.5).unwrap().num_seconds();
        assert_eq!(middle(1), 5);
        assert_eq!(middle(2), 15);
        let delays: Vec<i64> = (1..schedule.max_attempts()).map(middle).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(schedule.delay_after(schedule.max_attempts(), 0.5), None);
        assert_eq!(schedule.delay_after(0, 0.5), None);
    }

    #[test]
    fn retries_go_on_for_more_than_a_day_even_with_the_shortest_jitter() {
        let schedule = RetrySchedule::standard();
        let total: i64 = (1..schedule.max_attempts())
            .map(|n| schedule.delay_after(n, 0.0).unwrap().num_seconds())
            .sum();
        assert!(total >= 24 * 3600, "{total} s");
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_varies() {
        let schedule = RetrySchedule::standard();
        let lowest = schedule.delay_after(3, 0.0).unwrap().num_milliseconds();
        let highest = schedule
            .delay_after(3, 0.999_999)
            .unwrap()
            .num_milliseconds();
        assert_eq!(lowest, 48_000);
        assert!((71_999..=72_000).contains(&highest), "{highest}");
        let drawn: std::collections::HashSet<i64> = (0..20)
            .map(|_| schedule.delay_after_random(3).unwrap().num_milliseconds())
            .collect();
        assert!(drawn.len() > 1);
        assert!(drawn.iter().all(|ms| (48_000..=72_000).contains(ms)));
    }

    #[test]
    fn a_scaled_schedule_keeps_its_shape() {
        let scaled = RetrySchedule::scaled(0.001);
        assert_eq!(
            scaled.max_attempts(),
            RetrySchedule::standard().max_attempts()
        );
        assert_eq!(scaled.delay_after(1, 0.5).unwrap().num_milliseconds(), 5);
    }
}
