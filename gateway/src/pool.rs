//! The verification pool: signature checks run here, on threads of their own, never on
//! the runtime's I/O threads, so a flood of cold codes cannot keep the gateway from
//! accepting, handshaking, driving QUIC, firing timers, serving the admin port or
//! following the feed.
//!
//! Codes begun on the I/O threads that wait for their signature (the core's `Pending`)
//! queue here (a bounded queue: a full one is 503 `overloaded`, never unbounded memory).
//! A worker takes up to [`MAX_BATCH`] queued codes at once and settles them with the
//! core's `Verifier::settle`, so concurrent cold codes share one Ed25519 batch
//! verification (about half the cost of single ones); a whole `/v1/verify/batch` is
//! begun and settled here (`decide_many`). A
//! code whose requester has gone (stream reset, connection closed) is dropped before it
//! is verified.
//!
//! Forgeries cost only the forger: a caller one of whose codes fails its signature is
//! *isolated* for [`ISOLATION`]: its codes are then verified apart from everyone else's,
//! in batches of its own, smaller the more of its codes fail (`Caller::batch_limit`:
//! most of its batches come out clean; one by one when a fifth fail), and each failure
//! also draws on the caller's budget of
//! failed signatures (`--caller-bad-signatures-per-s`), beyond which its uncached codes
//! are refused with 429 before any work (`service.rs`). A batch that does fail is
//! bisected by the core, so a forgery fails only itself and is verified once.

use std::collections::VecDeque;
use std::sync::Arc;

use gateway_core::decide::{Begun, Pending};
use gateway_core::{Decision, Reason, RequestError, Verifier};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::callers::Caller;

/// Most codes decided in one call.
pub const MAX_BATCH: usize = 64;

/// How long a caller whose code failed its signature is verified apart from the others.
pub const ISOLATION: std::time::Duration = std::time::Duration::from_secs(10);

type Answer = Result<Decision, RequestError>;

/// One piece of work.
enum Work {
    /// One code begun on the I/O thread, waiting for its signature (`/v1/verify`,
    /// `/v1/auth`, a line of `/v1/verify/stream`).
    One {
        pending: Pending,
        caller: Arc<Caller>,
        reply: oneshot::Sender<Answer>,
    },
    /// A whole `/v1/verify/batch`, in order.
    Many {
        items: Vec<(String, String)>,
        caller: Arc<Caller>,
        reply: oneshot::Sender<Vec<Answer>>,
    },
}

impl Work {
    fn abandoned(&self) -> bool {
        match self {
            Work::One { reply, .. } => reply.is_closed(),
            Work::Many { reply, .. } => reply.is_closed(),
        }
    }

    fn size(&self) -> usize {
        match self {
            Work::One { .. } => 1,
            Work::Many { items, .. } => items.len().max(1),
        }
    }
}

/// What the pool's workers need of the gateway (the gateway's `App` gives it): the
/// verifier, the clock, the decision metric, and the pool whose queue they take from.
pub trait Decides: Send + Sync + 'static {
    /// The verification state.
    fn verifier(&self) -> &Verifier;
    /// Seconds since the epoch (the gateway's clock).
    fn now(&self) -> u64;
    /// The pool.
    fn pool(&self) -> &Pool;
}

/// The pool is full: the request is refused with 503 `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

struct Queue {
    work: VecDeque<Work>,
    /// Codes waiting (a batch counts each of its items).
    codes: usize,
}

/// The queue and its workers.
pub struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    depth: metrics::Gauge,
    dropped: metrics::Counter,
    /// Codes per take (`gateway_verify_batch_codes`).
    batch: metrics::Histogram,
}

impl Pool {
    /// A pool whose queue holds at most `capacity` codes; the workers are started by
    /// [`Pool::start`] once the app exists.
    pub fn new(capacity: usize) -> Pool {
        Pool {
            queue: Mutex::new(Queue {
                work: VecDeque::new(),
                codes: 0,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            depth: metrics::gauge!("gateway_verify_queue_depth"),
            dropped: metrics::counter!("gateway_verify_abandoned_total"),
            batch: metrics::histogram!("gateway_verify_batch_codes"),
        }
    }

    /// Starts `threads` workers on `app`'s pool.
    pub fn start<A: Decides>(app: &Arc<A>, threads: usize) -> std::io::Result<()> {
        for i in 0..threads.max(1) {
            let app = app.clone();
            std::thread::Builder::new()
                .name(format!("verify-{i}"))
                .spawn(move || worker(&*app))?;
        }
        Ok(())
    }

    fn push(&self, w: Work) -> Result<(), QueueFull> {
        let mut q = self.queue.lock();
        let n = w.size();
        if q.codes + n > self.capacity {
            return Err(QueueFull);
        }
        q.codes += n;
        q.work.push_back(w);
        self.depth.set(q.codes as f64);
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// Settles one code waiting for its signature on the pool. `Err` when the queue is
    /// full; `Ok(None)` if the pool went away.
    pub async fn settle(
        &self,
        caller: &Arc<Caller>,
        pending: Pending,
    ) -> Result<Option<Answer>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        self.push(Work::One {
            pending,
            caller: caller.clone(),
            reply,
        })?;
        Ok(rx.await.ok())
    }

    /// Decides a batch on the pool, answers in order.
    pub async fn decide_many(
        &self,
        caller: &Arc<Caller>,
        items: Vec<(String, String)>,
    ) -> Result<Option<Vec<Answer>>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        self.push(Work::Many {
            items,
            caller: caller.clone(),
            reply,
        })?;
        Ok(rx.await.ok())
    }

    /// Takes the next work: a batch request alone, or up to [`MAX_BATCH`] single codes.
    /// Work whose requester has gone is dropped here, unverified.
    ///
    /// A take of a few single codes first lets the threads that feed the queue run once
    /// (`yield_now`) and then takes what they added: on a machine where this thread
    /// shares a core with the runtime, waking it preempts the runtime at the first code,
    /// so without this every batch would hold one code and lose batch verification's
    /// halving of the cost. Where the thread has a core to itself the yield returns at
    /// once.
    fn take(&self) -> Vec<Work> {
        let mut out = Vec::new();
        let mut q = self.queue.lock();
        loop {
            self.take_queued(&mut q, &mut out);
            if !out.is_empty() {
                break;
            }
            self.ready.wait(&mut q);
        }
        let singles_only = !out.iter().any(|w| matches!(w, Work::Many { .. }));
        if singles_only && out.len() < MAX_BATCH / 4 {
            drop(q);
            std::thread::yield_now();
            q = self.queue.lock();
            self.take_queued(&mut q, &mut out);
        }
        self.batch
            .record(out.iter().map(Work::size).sum::<usize>() as f64);
        out
    }

    /// Moves queued work to `out`: single codes up to [`MAX_BATCH`] in all, or one batch
    /// request when `out` is empty.
    fn take_queued(&self, q: &mut Queue, out: &mut Vec<Work>) {
        while let Some(w) = q.work.pop_front() {
            q.codes -= w.size();
            if w.abandoned() {
                self.dropped.increment(1);
                continue;
            }
            let many = matches!(w, Work::Many { .. });
            if (many && !out.is_empty()) || out.len() >= MAX_BATCH {
                // Keep it for the next take (a batch request whole).
                q.codes += w.size();
                q.work.push_front(w);
                break;
            }
            out.push(w);
            if many || out.len() >= MAX_BATCH {
                break;
            }
        }
        self.depth.set(q.codes as f64);
    }
}

fn worker(app: &impl Decides) {
    loop {
        let work = app.pool().take();
        let now = app.now();
        let mut singles: Vec<Single> = Vec::new();
        for w in work {
            match w {
                Work::Many {
                    items,
                    caller,
                    reply,
                } => {
                    let refs: Vec<(&str, &str)> = items
                        .iter()
                        .map(|(c, v)| (c.as_str(), v.as_str()))
                        .collect();
                    let limit = if caller.isolated() {
                        caller.batch_limit(MAX_BATCH)
                    } else {
                        refs.len().max(1)
                    };
                    let answers = refs
                        .chunks(limit)
                        .flat_map(|chunk| match chunk {
                            [(c, v)] => vec![app.verifier().decide(c, v, now)],
                            _ => app.verifier().decide_many(chunk, now),
                        })
                        .collect::<Vec<_>>();
                    for a in &answers {
                        note(&caller, a);
                    }
                    let _ = reply.send(answers);
                }
                Work::One {
                    pending,
                    caller,
                    reply,
                } => singles.push((pending, caller, reply)),
            }
        }
        // Isolated callers' codes apart from everyone else's: each such caller's in a batch
        // of its own (one by one if its codes fail often: bisecting batches that mostly
        // hold a forgery costs more than single checks); everyone else's in one batch.
        let (alone, together): (Vec<_>, Vec<_>) =
            singles.into_iter().partition(|(_, c, _)| c.isolated());
        for group in by_caller(alone) {
            decide_group(app, group, now);
        }
        decide_group(app, together, now);
    }
}

type Single = (Pending, Arc<Caller>, oneshot::Sender<Answer>);
/// Where a settled code's answer goes, and whose it is.
type Reply = (Arc<Caller>, oneshot::Sender<Answer>);

/// Splits codes by caller, each caller's in arrival order.
fn by_caller(codes: Vec<Single>) -> Vec<Vec<Single>> {
    let mut groups: Vec<Vec<Single>> = Vec::new();
    for s in codes {
        match groups.iter_mut().find(|g| Arc::ptr_eq(&g[0].1, &s.1)) {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    groups
}

/// Decides codes together (one batch verification); when they are all one caller's
/// whose codes fail often, in batches as small as its [`Caller::batch_limit`] (one by
/// one at the limit of 1).
fn decide_group(app: &impl Decides, group: Vec<Single>, now: u64) {
    let Some(first) = group.first() else {
        return;
    };
    let limit = if first.1.isolated() {
        first.1.batch_limit(MAX_BATCH)
    } else {
        MAX_BATCH
    };
    let mut rest = group.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Single> = rest.by_ref().take(limit).collect();
        let (pending, to): (Vec<Pending>, Vec<Reply>) =
            chunk.into_iter().map(|(p, c, r)| (p, (c, r))).unzip();
        let answers = if pending.len() == 1 {
            pending
                .into_iter()
                .map(|p| app.verifier().settle_one(p, now))
                .collect()
        } else {
            let begun = pending.into_iter().map(|p| Ok(Begun::Pending(p))).collect();
            app.verifier().settle(begun, now)
        };
        for ((caller, reply), a) in to.into_iter().zip(answers) {
            note(&caller, &a);
            let _ = reply.send(a);
        }
    }
}

/// Counts a decision's signature against its caller (a failed one isolates it). The
/// decision metric is recorded once, by the API, for every decision wherever it was made.
fn note(caller: &Caller, a: &Answer) {
    if let Ok(d) = a {
        let forged = d.holder.reason == Reason::BadSignature;
        caller.signature_checked(!forged);
        if forged {
            caller.bad_signature(ISOLATION);
        }
    }
}
