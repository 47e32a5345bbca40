//! The running gateway's shared state: the core's [`Verifier`], the callers, the feed's
//! progress, the limits and the metrics. Built once by `serve` and passed down as an
//! `Arc<App>`; nothing here is global.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_core::feed::life::{Beat, Life, Window};
use gateway_core::Verifier;

use crate::callers::Callers;
use crate::metrics::Metrics;

/// Body and line limits of `api.md`.
pub const VERIFY_BODY_LIMIT: usize = 8 * 1024;
pub const BATCH_BODY_LIMIT: usize = 2 * 1024 * 1024;
pub const BATCH_MAX_ITEMS: usize = 1000;
pub const STREAM_LINE_LIMIT: usize = 8192;

/// How far the feed has got, written by the feed task, read by every response.
pub struct FeedState {
    /// Last position processed (`feed_seq`), 0 before any.
    position: AtomicU64,
    /// Milliseconds since boot of the last sign of life (0: none yet; the staleness
    /// clock then starts at boot). Only a heartbeat counted by [`Life`] sets it.
    last_message_ms: AtomicU64,
    /// The signs of life of `feed.md` revision 4 (written by the feed task only).
    life: parking_lot::Mutex<Life>,
    /// Copies of `life`'s flags for readers.
    gap: AtomicBool,
    clock_behind: AtomicBool,
    /// Whether the feed has caught up with what was there at boot.
    caught_up: AtomicBool,
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    /// The newest position known to exist (the stream's last sequence; for the file
    /// feed, the last line read).
    head: AtomicU64,
    /// Seconds the last processed message waited since it was published (NATS), 0 when
    /// nothing is pending.
    lag_ms: AtomicU64,
    /// The snapshot position this run resumed from (0: replayed from the start).
    pub resumed_from: AtomicU64,
    /// The identity of the stream followed (NATS: name and creation time), once known.
    stream_id: parking_lot::Mutex<Option<String>>,
    /// A snapshot is being checked and applied: decisions wait for the whole of it
    /// (503), so that no request sees half of it.
    restoring: AtomicBool,
}

impl Default for FeedState {
    fn default() -> Self {
        FeedState {
            position: AtomicU64::new(0),
            last_message_ms: AtomicU64::new(0),
            life: parking_lot::Mutex::new(Life::default()),
            gap: AtomicBool::new(false),
            clock_behind: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            head: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            resumed_from: AtomicU64::new(0),
            stream_id: parking_lot::Mutex::new(None),
            restoring: AtomicBool::new(false),
        }
    }
}

impl FeedState {
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    pub fn set_caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// Records that the message at `position` was processed (applied or skipped): it
    /// moves the position and is never a sign of life (`feed.md` revision 4).
    pub fn passed_over(&self, position: u64) {
        self.life.lock().message(position);
        self.position.store(position, Ordering::Release);
    }

    /// Judges an authenticated heartbeat at `position` (see [`Life::heartbeat`]) and
    /// records it as processed; a counted one is a sign of life from `since_boot`.
    pub fn heartbeat(
        &self,
        position: u64,
        at: i64,
        prev: Option<u64>,
        now: u64,
        window: Window,
        since_boot: Duration,
    ) -> Beat {
        let mut life = self.life.lock();
        let beat = life.heartbeat(position, at, prev, now, window);
        if beat == Beat::Alive {
            self.last_message_ms
                .store(since_boot.as_millis().max(1) as u64, Ordering::Release);
        }
        self.gap.store(life.gap(), Ordering::Release);
        self.clock_behind
            .store(life.clock_behind(), Ordering::Release);
        drop(life);
        self.position.store(position, Ordering::Release);
        beat
    }

    /// Records the identity of the stream followed.
    pub fn set_stream_id(&self, id: String) {
        *self.stream_id.lock() = Some(id);
    }

    /// The identity of the stream followed, once known.
    pub fn stream_id(&self) -> Option<String> {
        self.stream_id.lock().clone()
    }

    /// Whether a snapshot is being restored (decisions then answer 503).
    pub fn restoring(&self) -> bool {
        self.restoring.load(Ordering::Acquire)
    }

    /// Marks the start or the end of a snapshot's restore.
    pub fn set_restoring(&self, on: bool) {
        self.restoring.store(on, Ordering::Release);
    }

    /// A heartbeat showed withheld messages (`feed_gap`) and no good one came since.
    pub fn gap(&self) -> bool {
        self.gap.load(Ordering::Acquire)
    }

    /// A heartbeat came from beyond the skew (`clock_behind`) and no good one since.
    pub fn clock_behind(&self) -> bool {
        self.clock_behind.load(Ordering::Acquire)
    }

    /// Sets the resume point from a snapshot: the position the feed starts after.
    pub fn resume_at(&self, position: u64) {
        *self.life.lock() = Life::resuming_at(position);
        self.resumed_from.store(position, Ordering::Relaxed);
        self.position.store(position, Ordering::Release);
        self.head.fetch_max(position, Ordering::Relaxed);
    }

    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed).max(self.position())
    }

    /// Records the newest position known to exist.
    pub fn saw_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::Relaxed);
    }

    /// Messages known to exist but not processed yet.
    pub fn lag(&self) -> u64 {
        self.head().saturating_sub(self.position())
    }

    pub fn lag_time(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }

    pub fn set_lag_time(&self, d: Duration) {
        self.lag_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }

    fn last_message(&self) -> Duration {
        Duration::from_millis(self.last_message_ms.load(Ordering::Acquire))
    }
}

/// Everything a request handler needs.
pub struct App {
    pub verifier: Verifier,
    pub callers: Callers,
    pub feed: FeedState,
    pub metrics: Metrics,
    pub dev: bool,
    pub stale_after: Duration,
    pub boot: Instant,
    /// Requests being decided (taken once the body is in); a request that finds none
    /// left is answered 503 at once.
    pub in_flight: std::sync::Arc<crate::slots::Slots>,
    /// `/v1/verify/stream` streams open, all callers (`--max-open-streams`).
    pub open_streams: std::sync::Arc<crate::slots::Slots>,
    /// Testing only (`--debug-fixed-now`): the clock's reading for every decision.
    pub fixed_now: Option<u64>,
    /// Where signatures are checked, off the I/O threads.
    pub pool: crate::pool::Pool,
    /// The bounds of `api.md` "Limits".
    pub limits: crate::limits::EdgeLimits,
    /// Running on the quick start's generated development keys.
    pub quick_start: bool,
    /// A broker off loopback without TLS (`--nats-insecure`).
    pub nats_insecure: bool,
    /// The feed keys (`--feed-key`); none: events need no `mac`.
    pub feed_keys: gateway_core::feed_auth::FeedKeys,
    /// Where `/v1/auth` finds the code and the venue.
    pub auth_headers: crate::config::AuthHeaders,
    /// The offline bundle as last made, and the state it was made of (feed position,
    /// lists held, policies in force and pending): every request until the state changes
    /// shares it, so a thousand validators fetching it hold one copy.
    pub bundle_cache: parking_lot::Mutex<Option<(BundleState, bytes::Bytes)>>,
}

/// What the offline bundle is made of, to know when to make it again.
pub type BundleState = (u64, usize, u64, u64);

impl crate::pool::Decides for App {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    fn now(&self) -> u64 {
        App::now(self)
    }

    fn pool(&self) -> &crate::pool::Pool {
        &self.pool
    }
}

impl App {
    /// The offline bundle (`api.md` revision 4), made again only when the state changed.
    pub fn bundle(&self) -> bytes::Bytes {
        let rules = self.verifier.rules();
        let version = |p: Option<&gateway_core::Policy>| p.map_or(0, |p| p.version());
        let state = (
            self.feed.position(),
            self.verifier.lists().entries().len(),
            version(rules.in_force()),
            version(rules.pending()),
        );
        let mut cache = self.bundle_cache.lock();
        match &*cache {
            Some((s, b)) if *s == state => b.clone(),
            _ => {
                let b = bytes::Bytes::from(gateway_core::offline::bundle::write(&self.verifier));
                *cache = Some((state, b.clone()));
                b
            }
        }
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> u64 {
        if let Some(t) = self.fixed_now {
            return t;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// No sign of life for `stale_after` (the clock starts at boot), or the clock is
    /// behind the authority's: answers then say `"stale": true` (`feed.md` revision 4).
    pub fn stale(&self) -> bool {
        self.boot.elapsed().saturating_sub(self.feed.last_message()) > self.stale_after
            || self.feed.clock_behind()
    }

    /// The clock limits heartbeats are judged by.
    pub fn life_window(&self) -> Window {
        Window {
            stale_after: self.stale_after.as_secs(),
            skew: self.verifier.limits().skew,
        }
    }

    /// What `/readyz` warns about without failing: `nats_insecure`.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.nats_insecure {
            w.push("nats_insecure");
        }
        w
    }

    /// Why the gateway is not ready, if it is not (`/readyz`).
    pub fn not_ready_reasons(&self) -> Vec<&'static str> {
        let mut r = Vec::new();
        if self.verifier.policy().is_none() {
            r.push("no_policy");
        }
        if self.verifier.trust().is_empty() {
            r.push("no_keys");
        }
        if !self.feed.caught_up() {
            r.push("feed_catching_up");
        }
        if self.boot.elapsed().saturating_sub(self.feed.last_message()) > self.stale_after {
            r.push("feed_stale");
        }
        if self.feed.gap() {
            r.push("feed_gap");
        }
        if self.feed.clock_behind() {
            r.push("clock_behind");
        }
        r
    }
}
