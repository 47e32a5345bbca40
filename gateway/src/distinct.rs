//! How many distinct card numbers one caller has checked lately, estimated without
//! keeping any: `gateway_caller_card_numbers_distinct{caller}`, for the alert on a
//! caller sweeping identity numbers (resident numbers have little entropy, so a
//! number → color oracle is worth guarding; `deploy/prometheus/alerts.yml`).
//!
//! Linear counting: each number (normalised as pseudonyms are: whitespace removed,
//! ASCII upper-cased) is hashed with a key drawn at random when the process starts and
//! sets one bit of [`BITS`]; the estimate is `-m ln(zero bits / m)`. What is held is
//! 2 KiB of bits per caller with the card permission: no number, no pseudonym, nothing
//! that can be turned back into either (a bit is shared by every number that hashes to
//! it, and the key dies with the process). The estimate is within a few percent up to
//! about 20,000 numbers a window and saturates near 160,000.
//!
//! Windows of [`WINDOW`]: the gauge shows the larger of the last finished window and the
//! running one, so a sweep shows while it runs and for one window after.

use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Bits in a window's bitmap.
pub const BITS: usize = 16_384;

/// One counting window.
pub const WINDOW: Duration = Duration::from_secs(600);

struct Window {
    bits: Box<[u64; BITS / 64]>,
    zeros: usize,
    started: Instant,
    /// The last finished window's estimate.
    previous: f64,
}

/// One caller's distinct-number estimate.
pub struct Distinct {
    window: Mutex<Window>,
    hasher: std::collections::hash_map::RandomState,
    gauge: metrics::Gauge,
}

impl Distinct {
    /// An empty estimate published on `gauge`.
    pub fn new(gauge: metrics::Gauge) -> Distinct {
        gauge.set(0.0);
        Distinct {
            window: Mutex::new(Window {
                bits: Box::new([0; BITS / 64]),
                zeros: BITS,
                started: Instant::now(),
                previous: 0.0,
            }),
            hasher: std::collections::hash_map::RandomState::new(),
            gauge,
        }
    }

    /// Counts one checked number.
    pub fn note(&self, number: &str) {
        self.note_at(number, Instant::now());
    }

    fn note_at(&self, number: &str, now: Instant) {
        let h = self.hasher.hash_one(Normalised(number)) as usize % BITS;
        let mut w = self.window.lock();
        if now.saturating_duration_since(w.started) >= WINDOW {
            w.previous = if now.saturating_duration_since(w.started) >= 2 * WINDOW {
                0.0
            } else {
                estimate(w.zeros)
            };
            *w.bits = [0; BITS / 64];
            w.zeros = BITS;
            w.started = now;
        }
        let (word, bit) = (h / 64, 1u64 << (h % 64));
        if w.bits[word] & bit == 0 {
            w.bits[word] |= bit;
            w.zeros -= 1;
            self.gauge.set(estimate(w.zeros).max(w.previous).round());
        }
    }

    /// The estimate now (the gauge's value).
    pub fn estimate(&self) -> f64 {
        let w = self.window.lock();
        estimate(w.zeros).max(w.previous).round()
    }
}

/// Linear counting's estimate from the zero bits left.
fn estimate(zeros: usize) -> f64 {
    let m = BITS as f64;
    -m * (zeros.max(1) as f64 / m).ln()
}

/// A number hashed as its normalised form, without building it.
struct Normalised<'a>(&'a str);

impl std::hash::Hash for Normalised<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for c in self.0.chars().filter(|c| !c.is_whitespace()) {
            state.write_u32(u32::from(c.to_ascii_uppercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct() -> Distinct {
        Distinct::new(metrics::gauge!("test_distinct"))
    }

    #[test]
    fn counts_distinct_numbers_not_checks() {
        let d = distinct();
        for _ in 0..50 {
            d.note("33010619800101001X");
            d.note(" 330106 19800101\t001x");
        }
        assert_eq!(d.estimate(), 1.0);
        for i in 0..5_000u32 {
            d.note(&format!("3301061980{i:08}"));
        }
        let e = d.estimate();
        assert!((4_800.0..=5_200.0).contains(&e), "{e}");
    }

    #[test]
    fn a_sweep_shows_for_one_window_after_it_ends() {
        let d = distinct();
        let t0 = Instant::now();
        for i in 0..1_000u32 {
            d.note_at(&format!("N{i}"), t0);
        }
        let during = d.estimate();
        assert!(during > 900.0, "{during}");
        // The next window: one number, the sweep's estimate still shows.
        d.note_at("N0", t0 + WINDOW);
        assert_eq!(d.estimate(), during);
        // Two windows on: gone.
        d.note_at("N0", t0 + 3 * WINDOW);
        assert_eq!(d.estimate(), 1.0);
    }

    #[test]
    fn a_full_bitmap_saturates_without_overflow() {
        assert!(estimate(0).is_finite() && estimate(0) > 150_000.0);
        assert_eq!(estimate(BITS), 0.0);
    }
}
