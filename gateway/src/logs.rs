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
}
