//! What the workers record: an HDR histogram of latencies (µs), a per-second timeline,
//! status codes, errors by kind, and wrong decisions by request kind. Each worker keeps
//! its own [`Recorder`] (no lock per request) and they are merged at the end; the live
//! progress line reads the shared [`Live`] counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::mix::Kind;
use gateway_client::Phase;

/// Latencies from 1 µs to 10 minutes, three significant figures.
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, sigfig).unwrap_or_else(|_| {
        Histogram::new(sigfig.clamp(1, 5)).unwrap_or_else(|_| unreachable!("valid sigfig"))
    })
}

/// One second of the run.
pub struct Second {
    pub requests: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// One worker's record.
pub struct Recorder {
    pub hist: Histogram<u64>,
    pub timeline: Vec<Second>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<Phase, u64>,
    pub sent: BTreeMap<Kind, u64>,
    /// (kind, what differed) → count.
    pub wrong: BTreeMap<(Kind, &'static str), u64>,
    /// Codes that must be denied but were allowed.
    pub unsafe_allows: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: histogram(3),
            timeline: Vec::new(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            sent: BTreeMap::new(),
            wrong: BTreeMap::new(),
            unsafe_allows: 0,
        }
    }
}

impl Recorder {
    fn second(&mut self, s: usize) -> &mut Second {
        while self.timeline.len() <= s {
            self.timeline.push(Second {
                requests: 0,
                errors: 0,
                hist: histogram(2),
            });
        }
        &mut self.timeline[s]
    }

    /// A request answered with an HTTP status after `us` microseconds, at second `s`.
    pub fn answered(&mut self, s: usize, kind: Kind, status: u16, us: u64) {
        let us = us.max(1);
        let _ = self.hist.record(us);
        let sec = self.second(s);
        sec.requests += 1;
        let _ = sec.hist.record(us);
        *self.statuses.entry(status).or_default() += 1;
        *self.sent.entry(kind).or_default() += 1;
    }

    /// A request that got no answer.
    pub fn failed(&mut self, s: usize, kind: Kind, e: Phase) {
        let sec = self.second(s);
        sec.requests += 1;
        sec.errors += 1;
        *self.errors.entry(e).or_default() += 1;
        *self.sent.entry(kind).or_default() += 1;
    }

    pub fn wrong(&mut self, kind: Kind, what: &'static str) {
        *self.wrong.entry((kind, what)).or_default() += 1;
        if what == "allowed_not_denied" && kind.must_deny() {
            self.unsafe_allows += 1;
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        let _ = self.hist.add(&other.hist);
        for (i, s) in other.timeline.into_iter().enumerate() {
            let mine = self.second(i);
            mine.requests += s.requests;
            mine.errors += s.errors;
            let _ = mine.hist.add(&s.hist);
        }
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.sent {
            *self.sent.entry(k).or_default() += v;
        }
        for (k, v) in other.wrong {
            *self.wrong.entry(k).or_default() += v;
        }
        self.unsafe_allows += other.unsafe_allows;
    }
}

/// Counters for the progress line.
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub wrong: AtomicU64,
    /// Latencies since the last progress line.
    pub recent: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            recent: Mutex::new(histogram(2)),
        }
    }
}

impl Live {
    pub fn add(&self, f: &AtomicU64) {
        f.fetch_add(1, Ordering::Relaxed);
    }
}
