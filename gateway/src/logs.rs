//! Log lines that an attacker can cause are throttled: each such site has a
//! [`Throttle`] that lets a few lines through per second and counts the rest, and the
//! next line that gets through says how many were held back (`suppressed`). The count is
//! also exported as `gateway_log_suppressed_total`. So the log says what happened at a
//! bounded rate, whatever the traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines allowed per one-second window at one site.
pub const LINES_PER_SECOND: u64 = 5;

/// The throttle of one log site.
pub struct Throttle {
    window: AtomicU64,
    in_window: AtomicU64,
    suppressed: AtomicU64,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn suppressed_counter() -> &'static metrics::Counter {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    C.get_or_init(|| metrics::counter!("gateway_log_suppressed_total"))
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            window: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the lines held back since the
    /// last one written; `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        let now = now_s();
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < LINES_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            suppressed_counter().increment(1);
            None
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// A warning through a throttle: `warn_throttled!(THROTTLE, field = value, ...; "message")`.
#[macro_export]
macro_rules! warn_throttled {
    ($throttle:expr, $($rest:tt)+) => {
        if let Some(suppressed) = $throttle.allow() {
            tracing::warn!(suppressed, $($rest)+);
        }
    };
}

/// How often long work (a replay of the stream, a snapshot load) says how far it is.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Progress of long work towards a known end: every [`PROGRESS_EVERY`] at most, one line
/// with where it is, the end, the rate since the last line and the time left at that
/// rate.
pub struct Progress {
    what: &'static str,
    started: std::time::Instant,
    last: (std::time::Instant, u64),
}

impl Progress {
    /// Work called `what`, starting now at `done`.
    pub fn new(what: &'static str, done: u64) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            what,
            started: now,
            last: (now, done),
        }
    }

    /// Reports `done` of `total` if the last line is [`PROGRESS_EVERY`] old; returns
    /// what it wrote, if it wrote a line.
    pub fn at(&mut self, done: u64, total: u64) -> Option<Step> {
        self.at_time(done, total, std::time::Instant::now())
    }

    fn at_time(&mut self, done: u64, total: u64, now: std::time::Instant) -> Option<Step> {
        let since = now.saturating_duration_since(self.last.0);
        if since < PROGRESS_EVERY {
            return None;
        }
        let rate = done.saturating_sub(self.last.1) as f64 / since.as_secs_f64();
        let left = total.saturating_sub(done);
        let step = Step {
            rate_per_s: rate.round() as u64,
            left_s: if rate > 0.0 {
                (left as f64 / rate).round() as u64
            } else {
                0
            },
        };
        tracing::info!(
            what = self.what,
            done,
            total,
            rate_per_s = step.rate_per_s,
            left_s = step.left_s,
            elapsed_s = now.saturating_duration_since(self.started).as_secs(),
            "progress"
        );
        self.last = (now, done);
        Some(step)
    }
}

/// What one progress line said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub rate_per_s: u64,
    pub left_s: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_second_then_a_count() {
        let t = Throttle::new();
        let allowed = (0..1000).filter(|_| t.allow().is_some()).count() as u64;
        // Within one second, or across a second boundary: at most two windows' worth.
        assert!(
            (LINES_PER_SECOND..=2 * LINES_PER_SECOND).contains(&allowed),
            "{allowed}"
        );
        assert!(t.suppressed.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn progress_says_rate_and_time_left_every_few_seconds() {
        let mut p = Progress::new("replay", 1_000);
        let t0 = p.started;
        assert_eq!(p.at_time(5_000, 101_000, t0 + PROGRESS_EVERY / 2), None);
        assert_eq!(
            p.at_time(51_000, 101_000, t0 + PROGRESS_EVERY),
            Some(Step {
                rate_per_s: 10_000,
                left_s: 5
            })
        );
        assert_eq!(p.at_time(52_000, 101_000, t0 + PROGRESS_EVERY), None);
        // Stalled: no rate, no estimate.
        assert_eq!(
            p.at_time(51_000, 101_000, t0 + 2 * PROGRESS_EVERY),
            Some(Step {
                rate_per_s: 0,
                left_s: 0
            })
        );
    }
}
