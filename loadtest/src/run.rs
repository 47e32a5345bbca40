//! The load itself: a closed loop (N requests in flight, each worker sending its next
//! request when the last is answered) or an open loop (requests started at a constant
//! rate on a fixed schedule, each latency measured from the moment the schedule said to
//! send it, so a slow server cannot hide its queue: no coordinated omission). A warm-up
//! runs first and is not counted (an open loop ramps its rate up through it); the run
//! ends at its duration or request count, always.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mix::{check, Item};
use crate::stats::{Live, Recorder};
use gateway_client::{Answer, ClientError, Conn, Phase, Target};

/// How requests are started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// This many requests in flight at all times.
    Closed { concurrency: usize },
    /// This many requests started per second, whatever the answers do.
    Open { rate: f64 },
}

/// When the run stops (whichever comes first).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub duration: Duration,
    pub requests: Option<u64>,
    pub warmup: Duration,
}

/// What a run needs.
pub struct Plan {
    pub target: Target,
    /// Checks each deny's receipt (`api.md` revision 4) when given.
    pub receipts: Option<Arc<gateway_core::decide::receipt::ReceiptKey>>,
    pub connections: usize,
    pub model: Model,
    pub bounds: Bounds,
    /// The requests, used in turn (wrapping around for a warm pool).
    pub items: Arc<Vec<Item>>,
    /// Open loop: most requests waiting for a connection before new ones count as
    /// errors (`overflow`), so memory stays bounded if the server stalls.
    pub max_outstanding: usize,
    /// Open loop: workers sending scheduled requests (at most this many in flight).
    pub open_workers: usize,
    /// Cold runs: the first this many items serve the warm-up, round and round, so the
    /// measured requests all carry codes never sent before. 0: one pool for both.
    pub warmup_items: usize,
}

/// What a run produced.
pub struct Outcome {
    pub recorder: Recorder,
    /// Measured time (after the warm-up).
    pub elapsed: Duration,
    /// Requests whose answer was never checked because the pool wrapped (cold runs).
    pub reused: u64,
    /// The generator's own CPU over the measured time, in cores (1.0 = one core busy).
    pub generator_cpu: Option<f64>,
}

/// Shared by every worker.
struct Shared {
    target: Target,
    conns: Vec<tokio::sync::RwLock<Option<Conn>>>,
    items: Arc<Vec<Item>>,
    warmup_items: usize,
    next: AtomicUsize,
    next_warmup: AtomicUsize,
    sent: AtomicU64,
    stop: AtomicBool,
    live: Arc<Live>,
    /// The measured part starts here (after the warm-up).
    measure_from: Instant,
    receipts: Option<Arc<gateway_core::decide::receipt::ReceiptKey>>,
}

impl Shared {
    /// The connection for slot `i`, reconnecting if it is gone.
    async fn conn(&self, i: usize) -> Option<Conn> {
        let slot = &self.conns[i % self.conns.len()];
        if let Some(c) = slot.read().await.as_ref() {
            return Some(c.clone());
        }
        let mut w = slot.write().await;
        if w.is_none() {
            *w = Conn::connect(&self.target).await.ok();
        }
        w.clone()
    }

    /// The connection for slot `i` if it is open and free to read now (no waiting).
    fn conn_now(&self, i: usize) -> Option<Conn> {
        let slot = &self.conns[i % self.conns.len()];
        slot.try_read().ok().and_then(|c| c.clone())
    }

    async fn drop_conn(&self, i: usize) {
        *self.conns[i % self.conns.len()].write().await = None;
    }

    /// The next item, or `None` when the budget of measured requests is spent (the
    /// warm-up's requests do not count against it).
    fn take(&self, limit: Option<u64>, measured: bool) -> Option<(usize, &Item)> {
        if let (Some(l), true) = (limit, measured) {
            if self.sent.fetch_add(1, Ordering::Relaxed) >= l {
                return None;
            }
        }
        let w = self.warmup_items.min(self.items.len().saturating_sub(1));
        let i = if measured || w == 0 {
            w + self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            self.next_warmup.fetch_add(1, Ordering::Relaxed) % w
        };
        Some((i, &self.items[i % self.items.len()]))
    }

    /// Sends one item on connection slot `c`.
    async fn send(&self, c: usize, item: &Item) -> Result<Answer, ClientError> {
        let Some(conn) = self.conn(c).await else {
            return Err(ClientError::new(Phase::Connect, "no connection"));
        };
        let r = conn
            .post(
                &self.target,
                &item.path,
                item.body.clone(),
                item.content_type,
            )
            .await;
        if r.is_err() {
            self.drop_conn(c).await;
        }
        r
    }

    /// Records what one request got; its latency counted from `intended` (now is its
    /// end).
    fn record(
        &self,
        item: &Item,
        intended: Instant,
        result: &Result<Answer, ClientError>,
        rec: &mut Recorder,
    ) {
        let us = intended.elapsed().as_micros() as u64;
        if intended < self.measure_from {
            return;
        }
        let second = intended.duration_since(self.measure_from).as_secs() as usize;
        self.live.add(&self.live.requests);
        match result {
            Ok(answer) => {
                let status = answer.status.as_u16();
                rec.answered(second, item.kind, status, us);
                if let Ok(mut h) = self.live.recent.lock() {
                    let _ = h.record(us.max(1));
                }
                if status != 200 {
                    self.live.add(&self.live.errors);
                } else if !self.target.lean {
                    if let Err(what) = check(item, &answer.body, self.receipts.as_deref()) {
                        rec.wrong(item.kind, what);
                        self.live.add(&self.live.wrong);
                    }
                }
            }
            Err(e) => {
                rec.failed(second, item.kind, e.phase);
                self.live.add(&self.live.errors);
            }
        }
    }

    /// Sends, records, and backs off if the server is gone.
    async fn one(&self, c: usize, item: &Item, intended: Instant, rec: &mut Recorder) {
        let result = self.send(c, item).await;
        self.record(item, intended, &result, rec);
        back_off_if_gone(&result).await;
    }
}

/// Runs the plan; `live` feeds the progress line.
pub async fn run(plan: Plan, live: Arc<Live>) -> Outcome {
    let start = Instant::now();
    let measure_from = start + plan.bounds.warmup;
    let end = measure_from + plan.bounds.duration;
    let shared = Arc::new(Shared {
        target: plan.target.clone(),
        conns: (0..plan.connections.max(1))
            .map(|_| tokio::sync::RwLock::new(None))
            .collect(),
        items: plan.items.clone(),
        warmup_items: plan.warmup_items,
        next: AtomicUsize::new(0),
        next_warmup: AtomicUsize::new(0),
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        live,
        measure_from,
        receipts: plan.receipts.clone(),
    });
    // Every connection up front (failures are retried per request).
    for i in 0..shared.conns.len() {
        let _ = shared.conn(i).await;
    }
    let limit = plan.bounds.requests;
    // The generator's CPU is read where the measured time starts and where it ends.
    let cpu_marks = Arc::new(std::sync::Mutex::new((None, None)));
    let stopper = {
        let (s, marks) = (shared.clone(), cpu_marks.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            if let Ok(mut m) = marks.lock() {
                m.0 = crate::cpu::process_time();
            }
            tokio::time::sleep_until(end.into()).await;
            if let Ok(mut m) = marks.lock() {
                m.1 = crate::cpu::process_time();
            }
            s.stop.store(true, Ordering::Relaxed);
        })
    };
    let mut recorder = Recorder::default();
    match plan.model {
        Model::Closed { concurrency } => {
            let mut workers = Vec::new();
            for w in 0..concurrency.max(1) {
                let s = shared.clone();
                workers.push(tokio::spawn(async move {
                    let mut rec = Recorder::default();
                    while !s.stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        let Some((_, item)) = s.take(limit, now >= s.measure_from) else {
                            break;
                        };
                        s.one(w, item, now, &mut rec).await;
                    }
                    rec
                }));
            }
            for w in workers {
                if let Ok(r) = w.await {
                    recorder.merge(r);
                }
            }
        }
        Model::Open { rate } => {
            recorder.merge(open_loop(&plan, &shared, rate, start, end, limit).await);
        }
    }
    stopper.abort();
    let elapsed = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    let (cpu_from, cpu_to) = cpu_marks.lock().map_or((None, None), |m| *m);
    let generator_cpu = match (cpu_from, cpu_to.or_else(crate::cpu::process_time)) {
        (Some(a), Some(b)) if !elapsed.is_zero() => {
            Some(b.saturating_sub(a).as_secs_f64() / elapsed.as_secs_f64())
        }
        _ => None,
    };
    let used = shared.next.load(Ordering::Relaxed) as u64;
    let fresh = plan.items.len().saturating_sub(shared.warmup_items) as u64;
    Outcome {
        recorder,
        elapsed,
        reused: used.saturating_sub(fresh),
        generator_cpu,
    }
}

/// The open loop: the schedule, run as a task of its own so the pacer's timer is driven
/// by the runtime thread that also sends (no wake-up crossing threads), starts each
/// request at its moment. On a lean HTTP/2 connection the pacer hands the request to
/// the connection itself and its answer is recorded by the connection's reader: no task
/// per request, so a burst of answers does not queue hundreds of tasks ahead of the
/// pacer (with a task per request the generator's own p99 against the minimal server
/// was 2–3 ms at 100,000 req/s). Otherwise it starts one task per request: at most
/// `open_workers` send at once; the others wait their turn, still timed from their own
/// moment. Beyond `max_outstanding` waiting, a new request counts as failed at its
/// time, so memory stays bounded if the server stalls. (A fixed pool of 512 workers
/// taking requests from one queue, as before, cost the generator milliseconds of
/// stalls: p99 3.3 ms at 2,000 req/s against a server answering in 0.1 ms; per-request
/// tasks: 0.2 ms.)
async fn open_loop(
    plan: &Plan,
    shared: &Arc<Shared>,
    rate: f64,
    start: Instant,
    end: Instant,
    limit: Option<u64>,
) -> Recorder {
    let sending = Arc::new(tokio::sync::Semaphore::new(plan.open_workers.max(1)));
    let most = plan.max_outstanding.max(1) + plan.open_workers.max(1);
    let flight = Arc::new(Flight::default());
    let record = Arc::new(std::sync::Mutex::new(Recorder::default()));
    let pacing = {
        let (shared, flight, record) = (shared.clone(), flight.clone(), record.clone());
        tokio::spawn(async move {
            let mut pacer = crate::pace::Pacer::new();
            if !pacer.fine() {
                eprintln!(
                    "loadtest: timerfd unavailable: the open loop is paced by the millisecond"
                );
            }
            let measure_from = shared.measure_from;
            let warmup = measure_from.saturating_duration_since(start);
            let mut n: u64 = 0;
            loop {
                let intended = start.checked_add(due(n, rate, warmup)).unwrap_or(end);
                if intended >= end || shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                pacer.until(intended).await;
                let Some((i, item)) = shared.take(limit, intended >= measure_from) else {
                    break;
                };
                n = n.saturating_add(1);
                if flight.open.load(Ordering::Relaxed) >= most {
                    // Too many waiting: counted as a failed request at its time.
                    if intended >= measure_from {
                        let sec = intended.duration_since(measure_from).as_secs() as usize;
                        if let Ok(mut r) = record.lock() {
                            r.failed(sec, item.kind, Phase::Timeout);
                        }
                        shared.live.add(&shared.live.errors);
                    }
                    continue;
                }
                flight.open.fetch_add(1, Ordering::Relaxed);
                if let Some(conn) = shared.conn_now(i) {
                    let on_answer = {
                        let (s, flight, record) = (shared.clone(), flight.clone(), record.clone());
                        Box::new(move |result: Result<Answer, ClientError>| {
                            let item = &s.items[i % s.items.len()];
                            if let Ok(mut r) = record.lock() {
                                s.record(item, intended, &result, &mut r);
                            }
                            flight.done();
                        })
                    };
                    let t = &shared.target;
                    if conn
                        .submit_post(
                            t,
                            &item.path,
                            item.body.clone(),
                            item.content_type,
                            on_answer,
                        )
                        .is_ok()
                    {
                        continue;
                    }
                }
                let (s, sending, flight, record) = (
                    shared.clone(),
                    sending.clone(),
                    flight.clone(),
                    record.clone(),
                );
                // Boxed: the task then holds a pointer, and spawning it copies 8 bytes
                // rather than the whole request's future.
                tokio::spawn(Box::pin(async move {
                    if let Ok(_turn) = sending.acquire().await {
                        let item = &s.items[i % s.items.len()];
                        let result = s.send(i, item).await;
                        if let Ok(mut r) = record.lock() {
                            s.record(item, intended, &result, &mut r);
                        }
                        back_off_if_gone(&result).await;
                    }
                    flight.done();
                }));
            }
        })
    };
    let _ = pacing.await;
    // Let what was started finish, bounded by the request timeout.
    let deadline = Instant::now() + plan.target.timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout_at(deadline.into(), flight.all_done()).await;
    let mut out = Recorder::default();
    if let Ok(mut r) = record.lock() {
        out = std::mem::take(&mut *r);
    }
    out
}

/// When the open loop's `n`-th request is due, counted from the start: during the
/// warm-up the rate rises evenly from a tenth of `rate` to all of it, then holds. Fresh
/// connections at once at the full rate could start a backlog that an open loop, never
/// slowing down, then carries into the measured time (seen over HTTP/3: the first
/// measured second at p50 1.5 s, draining over three, in one run out of three).
fn due(n: u64, rate: f64, warmup: Duration) -> Duration {
    let rate = rate.max(0.001);
    let w = warmup.as_secs_f64();
    let n = n as f64;
    // Requests due by the warm-up's end: the integral of rate × (0.1 + 0.9 t / w).
    let ramped = 0.55 * rate * w;
    let t = if w > 0.0 && n < ramped {
        // Solves rate × (0.1 t + 0.45 t² / w) = n for t.
        (-0.1 + (0.01 + 1.8 * n / (rate * w)).sqrt()) * w / 0.9
    } else {
        w + (n - ramped.min(n)) / rate
    };
    Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX)
}

/// Waits a little after a request found the server gone or refusing, so a sender (and
/// the turn it holds) does not spin.
async fn back_off_if_gone(result: &Result<Answer, ClientError>) {
    if matches!(result, Err(e) if e.phase == Phase::Connect) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The open loop's requests started and not yet finished.
#[derive(Default)]
struct Flight {
    open: AtomicUsize,
    none_left: tokio::sync::Notify,
}

impl Flight {
    fn done(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none_left.notify_one();
        }
    }

    async fn all_done(&self) {
        while self.open.load(Ordering::Acquire) > 0 {
            self.none_left.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_ramps_through_the_warm_up_then_holds_the_rate() {
        let (rate, warmup) = (1000.0, Duration::from_secs(1));
        let t = |n| due(n, rate, warmup).as_secs_f64();
        // Starts at a tenth of the rate, ends the warm-up with 550 requests, then every
        // millisecond; never goes back.
        assert!((t(1) - 0.01).abs() < 0.001, "{}", t(1));
        assert!((t(550) - 1.0).abs() < 1e-9, "{}", t(550));
        assert!((t(1550) - 2.0).abs() < 1e-9, "{}", t(1550));
        let mut last = 0.0;
        for n in 0..3000 {
            let now = t(n);
            assert!(now >= last, "n={n}");
            let gap = now - last;
            if n > 560 {
                assert!((gap - 0.001).abs() < 1e-9, "n={n}: {gap}");
            }
            last = now;
        }
        // No warm-up: the plain schedule.
        assert_eq!(due(5, 1000.0, Duration::ZERO), Duration::from_millis(5));
        // Far out or at absurd rates: a moment, never a panic.
        for rate in [f64::MIN_POSITIVE, 1e-300, 1e300, f64::NAN] {
            let _ = due(u64::MAX, rate, warmup);
            let _ = due(1, rate, Duration::MAX);
        }
    }
}
