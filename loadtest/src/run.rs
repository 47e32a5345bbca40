//! The load itself: a closed loop (N requests in flight, each worker sending its next
//! request when the last is answered) or an open loop (requests started at a constant
//! rate on a fixed schedule, each latency measured from the moment the schedule said to
//! send it, so a slow server cannot hide its queue: no coordinated omission). A warm-up
//! runs first and is not counted; the run ends at its duration or request count, always.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mix::{check, Item};
use crate::stats::{Live, Recorder};
use gateway_client::{ClientError, Conn, Phase, Target};

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

    /// Sends one item on connection slot `c`; latency counted from `intended`.
    async fn one(&self, c: usize, item: &Item, intended: Instant, rec: &mut Recorder) {
        let counted = intended >= self.measure_from;
        let second = intended
            .saturating_duration_since(self.measure_from)
            .as_secs() as usize;
        let result = match self.conn(c).await {
            Some(conn) => {
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
            None => Err(ClientError::new(Phase::Connect, "no connection")),
        };
        let us = intended.elapsed().as_micros() as u64;
        if !counted {
            return;
        }
        self.live.add(&self.live.requests);
        match result {
            Ok(answer) => {
                let status = answer.status.as_u16();
                rec.answered(second, item.kind, status, us);
                if let Ok(mut h) = self.live.recent.lock() {
                    let _ = h.record(us.max(1));
                }
                if status == 200 && !self.target.lean {
                    if let Err(what) = check(&item.expect, &answer.body) {
                        rec.wrong(item.kind, what);
                        self.live.add(&self.live.wrong);
                    }
                } else {
                    self.live.add(&self.live.errors);
                }
            }
            Err(e) => {
                rec.failed(second, item.kind, e.phase);
                self.live.add(&self.live.errors);
                if e.phase == Phase::Connect {
                    // The server is gone or refusing: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
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
            // A fixed set of workers, each with its own record, takes scheduled requests
            // from one queue: any free worker takes the next, so requests run as
            // concurrently as the workers allow, and a request waiting in the queue is
            // still timed from its scheduled moment.
            let (tx, rx) =
                tokio::sync::mpsc::channel::<(usize, Instant)>(plan.max_outstanding.max(1));
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let mut workers = Vec::new();
            for _ in 0..plan.open_workers.max(1) {
                let (s, rx) = (shared.clone(), rx.clone());
                workers.push(tokio::spawn(async move {
                    let mut rec = Recorder::default();
                    loop {
                        let job = rx.lock().await.recv().await;
                        let Some((i, intended)) = job else { break };
                        let item = &s.items[i % s.items.len()];
                        s.one(i, item, intended, &mut rec).await;
                    }
                    rec
                }));
            }
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut n: u32 = 0;
            loop {
                let intended = start + interval * n;
                if intended >= end || shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                // The timer ticks by the millisecond: requests due within it go out
                // together, each still timed from its own scheduled moment.
                if intended > Instant::now() {
                    tokio::time::sleep_until(intended.into()).await;
                }
                let Some((i, _)) = shared.take(limit, intended >= measure_from) else {
                    break;
                };
                n = n.saturating_add(1);
                if tx.try_send((i, intended)).is_err() {
                    // Too many waiting: counted as a failed request at its time.
                    if intended >= measure_from {
                        let sec = intended.duration_since(measure_from).as_secs() as usize;
                        let kind = shared.items[i % shared.items.len()].kind;
                        recorder.failed(sec, kind, Phase::Timeout);
                        shared.live.add(&shared.live.errors);
                    }
                }
            }
            drop(tx);
            // Let the workers finish what is queued, bounded by the request timeout.
            let deadline = Instant::now() + plan.target.timeout + Duration::from_secs(1);
            for w in workers {
                if let Ok(Ok(r)) = tokio::time::timeout_at(deadline.into(), w).await {
                    recorder.merge(r);
                }
            }
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
