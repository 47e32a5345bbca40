//! The verification pool: signature checks run here, on threads of their own, never on
//! the runtime's I/O threads, so a flood of cold codes cannot keep the gateway from
//! accepting, handshaking, driving QUIC, firing timers, serving the admin port or
//! following the feed.
//!
//! Codes begun on the I/O threads that wait for their signature (the core's `Pending`)
//! queue here; a whole `/v1/verify/batch` is queued as it came and begun (decoded) here,
//! its codes that need a signature then queued like any other. A worker takes up to
//! [`MAX_BATCH`] codes at once and settles them with the core's `Verifier::settle`, so
//! concurrent cold codes share one Ed25519 batch verification (about half the cost of
//! single ones). A code whose requester has gone is dropped before it is verified.
//!
//! Fair verification (`api.md` revision 4), the queue shared like a scheduler shares a
//! core:
//! - **Callers in turn.** Callers with codes waiting are served one code each in turn
//!   (deficit round robin with a quantum of one code: every code costs one signature
//!   check). Each caller's waiting codes are bounded by its share of `--verify-queue`
//!   (the queue's size divided by the callers with work waiting, itself included); a
//!   code beyond it gets 503 `overloaded` (for a batch, that item), whatever the others
//!   do. Shares are taken when codes arrive, so the queue holds at most twice
//!   `--verify-queue` codes when callers arrive one after another.
//! - **Gates in turn within a caller.** A caller's codes are grouped by gate (`gate` of
//!   a request, `x-jkm-gate` of `/v1/auth`; codes without one form one group; the 64
//!   gates seen most recently have a group each, older ones share one), and the groups
//!   are served in turn the same way, a single code bounded by its gate's share of its
//!   caller's share (a batch, queued whole before its items' gates are read, by its
//!   caller's share).
//! - **Failures are paid by who causes them.** Every failed signature is charged to its
//!   caller, code by code as it fails, on a bucket refilled at
//!   `--caller-bad-signatures-per-s` (or 1 % of the caller's rate), whose debt is
//!   carried. A group some of whose recent codes failed is verified apart from everyone
//!   else (a batch holding a forgery is bisected, which costs more than checking singly);
//!   one a fifth or more of whose codes fail is verified one code at a time, and only
//!   while its caller is not in debt: it waits behind its own failures, filling its
//!   caller's share, and never makes another group's or caller's valid codes wait or fail.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::decide::{Begun, Pending};
use gateway_core::{Decision, Reason, RequestError, Verifier};
use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::oneshot;

use crate::callers::Caller;

/// Most codes decided in one call.
pub const MAX_BATCH: usize = 64;
/// Gates of one caller that have a group of their own (`api.md` revision 4).
pub const GATES_PER_CALLER: usize = 64;
/// Longest gate id, in bytes (a longer one is 400 `bad_request`).
pub const MAX_GATE_LEN: usize = 64;

type Answer = Result<Decision, RequestError>;

/// The pool cannot take (more of) this caller's codes: 503 `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// What a queued code's requester gets: its answer, or 503 when it was not taken.
pub type Outcome = Result<Answer, QueueFull>;

/// One item of a `/v1/verify/batch`: code, venue, gate.
pub type BatchItem = (String, String, Option<String>);

/// Where a settled code's answer goes.
enum Reply {
    /// A single request's (`/v1/verify`, `/v1/auth`, a stream line).
    One(oneshot::Sender<Outcome>),
    /// An item of a batch.
    Part(Arc<Parts>, usize),
}

impl Reply {
    fn closed(&self) -> bool {
        match self {
            Reply::One(tx) => tx.is_closed(),
            Reply::Part(p, _) => p.closed(),
        }
    }

    fn send(self, o: Outcome) {
        match self {
            Reply::One(tx) => {
                let _ = tx.send(o);
            }
            Reply::Part(p, i) => p.set(i, o),
        }
    }
}

/// A batch's answers, gathered as its items are settled, sent when the last one is.
struct Parts {
    answers: Mutex<Vec<Option<Outcome>>>,
    left: AtomicUsize,
    reply: Mutex<Option<oneshot::Sender<Vec<Outcome>>>>,
}

impl Parts {
    fn closed(&self) -> bool {
        self.reply.lock().as_ref().is_none_or(|r| r.is_closed())
    }

    fn set(&self, i: usize, o: Outcome) {
        if let Some(slot) = self.answers.lock().get_mut(i) {
            *slot = Some(o);
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let answers = std::mem::take(&mut *self.answers.lock());
            let all = answers
                .into_iter()
                .map(|a| a.unwrap_or(Err(QueueFull)))
                .collect();
            if let Some(tx) = self.reply.lock().take() {
                let _ = tx.send(all);
            }
        }
    }
}

/// One code waiting for its signature, in its group.
struct Code {
    pending: Pending,
    reply: Reply,
}

/// A batch request waiting to be begun.
struct Batch {
    items: Vec<BatchItem>,
    parts: Arc<Parts>,
}

/// Which group of its caller a code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GateKey {
    /// Codes without a gate.
    None,
    /// One of the caller's recent gates.
    Named(Box<str>),
    /// Gates beyond the recent ones.
    Others,
}

/// One gate's codes and its recent signature checks.
struct Group {
    gate: GateKey,
    codes: VecDeque<Code>,
    /// Recent checks (passed, failed), halved as they grow.
    ok: u32,
    bad: u32,
    /// Last use, for recycling the least recent named group.
    used: u64,
}

/// Checks remembered per group before the counts are halved.
const OUTCOME_WINDOW: u32 = 256;

impl Group {
    fn new(gate: GateKey, used: u64) -> Group {
        Group {
            gate,
            codes: VecDeque::new(),
            ok: 0,
            bad: 0,
            used,
        }
    }

    /// Some of its recent codes failed: verified apart from everyone else's.
    fn suspect(&self) -> bool {
        self.bad > 0
    }

    /// A fifth or more of its recent codes failed: verified one by one, while its caller
    /// is not in debt.
    fn failing(&self) -> bool {
        self.bad >= 2 && u64::from(self.bad) * 5 >= u64::from(self.ok) + u64::from(self.bad)
    }

    /// How many of its codes to verify in one batch: small enough that most batches
    /// come out clean (about `0.2 / f` codes for a failure rate `f`), full without
    /// failures.
    fn batch_limit(&self) -> usize {
        let (ok, bad) = (u64::from(self.ok), u64::from(self.bad));
        if bad == 0 {
            return MAX_BATCH;
        }
        usize::try_from(((ok + bad) / (5 * bad)).clamp(1, MAX_BATCH as u64)).unwrap_or(1)
    }

    fn record(&mut self, passed: bool) {
        if passed {
            self.ok += 1;
        } else {
            self.bad += 1;
        }
        if self.ok + self.bad >= OUTCOME_WINDOW {
            self.ok /= 2;
            self.bad /= 2;
        }
    }
}

/// One caller's place in the queue.
struct CallerQueue {
    caller: Arc<Caller>,
    groups: Vec<Group>,
    /// Groups with codes waiting, in turn.
    turn: VecDeque<usize>,
    batches: VecDeque<Batch>,
    /// Codes waiting (a batch counts each of its items).
    codes: usize,
    clock: u64,
}

impl CallerQueue {
    fn new(caller: Arc<Caller>) -> CallerQueue {
        CallerQueue {
            caller,
            groups: vec![Group::new(GateKey::None, 0), Group::new(GateKey::Others, 0)],
            turn: VecDeque::new(),
            batches: VecDeque::new(),
            codes: 0,
            clock: 0,
        }
    }

    /// The group of `gate`: its own among the recent ones, else the shared one.
    fn group_of(&mut self, gate: Option<&str>) -> usize {
        self.clock += 1;
        let now = self.clock;
        let Some(gate) = gate else {
            return 0;
        };
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| matches!(&g.gate, GateKey::Named(n) if &**n == gate))
        {
            self.groups[i].used = now;
            return i;
        }
        if self.groups.len() < GATES_PER_CALLER + 2 {
            self.groups
                .push(Group::new(GateKey::Named(gate.into()), now));
            return self.groups.len() - 1;
        }
        // Recycle the least recent gate whose group is idle; none idle: the shared one.
        let idle = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| matches!(g.gate, GateKey::Named(_)) && g.codes.is_empty())
            .min_by_key(|(_, g)| g.used)
            .map(|(i, _)| i);
        match idle {
            Some(i) => {
                self.groups[i] = Group::new(GateKey::Named(gate.into()), now);
                i
            }
            None => 1,
        }
    }

    fn push_code(&mut self, group: usize, code: Code) {
        let g = &mut self.groups[group];
        if g.codes.is_empty() {
            self.turn.push_back(group);
        }
        g.codes.push_back(code);
    }

    fn has_work(&self) -> bool {
        !self.turn.is_empty() || !self.batches.is_empty()
    }
}

/// The queue: callers with work, in turn.
struct State {
    callers: HashMap<usize, CallerQueue>,
    /// Callers with work waiting, in turn (keys of `callers`).
    turn: VecDeque<usize>,
    /// Codes waiting, all callers.
    codes: usize,
}

fn key(caller: &Arc<Caller>) -> usize {
    Arc::as_ptr(caller) as usize
}

/// What one worker takes at once.
#[derive(Default)]
struct Take {
    /// A batch request to begin.
    begin: Option<(Arc<Caller>, Batch)>,
    /// Codes verified together (one batch verification, bisected on failure).
    together: Vec<Taken>,
    /// Codes of suspect groups: verified apart, each group's in batches of its limit.
    apart: Vec<Vec<Taken>>,
}

impl Take {
    fn len(&self) -> usize {
        self.together.len() + self.apart.iter().map(Vec::len).sum::<usize>()
    }

    fn is_empty(&self) -> bool {
        self.begin.is_none() && self.len() == 0
    }
}

/// A code taken for verification, and where its outcome is recorded.
struct Taken {
    code: Code,
    caller: Arc<Caller>,
    group: usize,
    /// The group's gate when taken (a recycled group is not charged).
    gate: GateKey,
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

/// The queue and its workers.
pub struct Pool {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
    depth: metrics::Gauge,
    dropped: metrics::Counter,
    /// Codes per take (`gateway_verify_batch_codes`).
    batch: metrics::Histogram,
}

impl Pool {
    /// A pool whose callers share `capacity` waiting codes; the workers are started by
    /// [`Pool::start`] once the app exists.
    pub fn new(capacity: usize) -> Pool {
        Pool {
            state: Mutex::new(State {
                callers: HashMap::new(),
                turn: VecDeque::new(),
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

    /// `caller`'s share of the queue: the queue divided by the callers with work
    /// waiting, itself included.
    fn share(&self, s: &State, caller: &Arc<Caller>) -> usize {
        let mine = s.callers.get(&key(caller));
        let active = s.turn.len() + usize::from(mine.is_none_or(|q| !q.has_work()));
        self.capacity / active.max(1)
    }

    /// Room for more codes of `caller` in a batch: its share less what it has waiting,
    /// within twice the queue in all.
    fn room(&self, s: &State, caller: &Arc<Caller>) -> usize {
        let waiting = s.callers.get(&key(caller)).map_or(0, |q| q.codes);
        self.share(s, caller)
            .saturating_sub(waiting)
            .min((2 * self.capacity).saturating_sub(s.codes))
    }

    /// Room for one more code of `caller` at `gate`: the gate's share of its caller's
    /// share (divided by the caller's gates with codes waiting, this one included) less
    /// what the gate has waiting, within twice the queue in all. So a gate that floods
    /// fills its own share, and the caller's other gates still find room.
    fn gate_room(&self, s: &State, caller: &Arc<Caller>, gate: Option<&str>) -> usize {
        let share = self.share(s, caller);
        let (active, waiting) = match s.callers.get(&key(caller)) {
            None => (1, 0),
            Some(q) => {
                let g = q.groups.iter().find(|g| match (&g.gate, gate) {
                    (GateKey::None, None) => true,
                    (GateKey::Named(n), Some(x)) => &**n == x,
                    _ => false,
                });
                let waiting = g.map_or(0, |g| g.codes.len());
                (q.turn.len() + usize::from(waiting == 0), waiting)
            }
        };
        (share / active.max(1))
            .saturating_sub(waiting)
            .min((2 * self.capacity).saturating_sub(s.codes))
    }

    fn caller_queue<'a>(s: &'a mut State, caller: &Arc<Caller>) -> &'a mut CallerQueue {
        let k = key(caller);
        s.callers
            .entry(k)
            .or_insert_with(|| CallerQueue::new(caller.clone()))
    }

    /// Puts the caller in turn if it has work and is not in it yet.
    fn activate(s: &mut State, caller: &Arc<Caller>, was_active: bool) {
        if !was_active {
            s.turn.push_back(key(caller));
        }
    }

    fn was_active(s: &State, caller: &Arc<Caller>) -> bool {
        s.callers
            .get(&key(caller))
            .is_some_and(CallerQueue::has_work)
    }

    /// Settles one code waiting for its signature, in the group of `gate`. `Err` when
    /// its caller's share of the queue is full; `Ok(None)` if the pool went away.
    pub async fn settle(
        &self,
        caller: &Arc<Caller>,
        gate: Option<&str>,
        pending: Pending,
    ) -> Result<Option<Answer>, QueueFull> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock();
            if self.gate_room(&s, caller, gate) == 0 {
                return Err(QueueFull);
            }
            let active = Self::was_active(&s, caller);
            let q = Self::caller_queue(&mut s, caller);
            let group = q.group_of(gate);
            q.push_code(
                group,
                Code {
                    pending,
                    reply: Reply::One(tx),
                },
            );
            q.codes += 1;
            s.codes += 1;
            Self::activate(&mut s, caller, active);
            self.depth.set(s.codes as f64);
        }
        self.ready.notify_one();
        match rx.await {
            Ok(Ok(a)) => Ok(Some(a)),
            Ok(Err(full)) => Err(full),
            Err(_) => Ok(None),
        }
    }

    /// Decides a batch on the pool, answers in order: each item its decision, or 503
    /// (`Err(QueueFull)`) when it was beyond the caller's share. `Ok(None)` if the pool
    /// went away.
    pub async fn decide_many(
        &self,
        caller: &Arc<Caller>,
        items: Vec<BatchItem>,
    ) -> Result<Option<Vec<Outcome>>, QueueFull> {
        let n = items.len();
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        let (tx, rx) = oneshot::channel();
        let parts = Arc::new(Parts {
            answers: Mutex::new((0..n).map(|_| None).collect()),
            left: AtomicUsize::new(n),
            reply: Mutex::new(Some(tx)),
        });
        let mut items = items;
        {
            let mut s = self.state.lock();
            let room = self.room(&s, caller);
            if room == 0 {
                return Err(QueueFull);
            }
            // Items beyond the caller's share: 503 each, at once.
            let over = items.split_off(n.min(room));
            let taken = items.len();
            let active = Self::was_active(&s, caller);
            let q = Self::caller_queue(&mut s, caller);
            q.batches.push_back(Batch {
                items,
                parts: parts.clone(),
            });
            q.codes += taken;
            s.codes += taken;
            Self::activate(&mut s, caller, active);
            self.depth.set(s.codes as f64);
            drop(s);
            for i in taken..taken + over.len() {
                parts.set(i, Err(QueueFull));
            }
        }
        self.ready.notify_one();
        Ok(rx.await.ok())
    }

    /// Queues the codes of a begun batch that wait for their signature (already counted
    /// against the caller's share).
    fn queue_begun(&self, caller: &Arc<Caller>, codes: Vec<(Option<String>, Code)>) {
        if codes.is_empty() {
            return;
        }
        {
            let mut s = self.state.lock();
            let active = Self::was_active(&s, caller);
            let q = Self::caller_queue(&mut s, caller);
            for (gate, code) in codes {
                let g = q.group_of(gate.as_deref());
                q.push_code(g, code);
            }
            Self::activate(&mut s, caller, active);
        }
        self.ready.notify_all();
    }

    /// Gives back `n` codes of `caller`'s count (answered or dropped).
    fn release(&self, s: &mut MutexGuard<'_, State>, caller: usize, n: usize) {
        if let Some(q) = s.callers.get_mut(&caller) {
            q.codes = q.codes.saturating_sub(n);
        }
        s.codes = s.codes.saturating_sub(n);
        self.depth.set(s.codes as f64);
    }

    /// Records the outcome of a signature check of a code of `caller`'s `group` (unless
    /// the group was given to another gate since).
    fn record(s: &mut State, caller: &Arc<Caller>, group: usize, gate: &GateKey, passed: bool) {
        if let Some(q) = s.callers.get_mut(&key(caller)) {
            if let Some(g) = q.groups.get_mut(group).filter(|g| g.gate == *gate) {
                g.record(passed);
            }
        }
    }

    /// Takes the next work: a batch request to begin, or up to [`MAX_BATCH`] codes, one
    /// of each caller with work in turn (and within a caller one of each group in turn).
    /// Waits while there is none, or while all there is waits on its caller's debt.
    fn take(&self) -> Take {
        let mut s = self.state.lock();
        loop {
            let (take, wait) = self.take_queued(&mut s);
            if !take.is_empty() {
                let singles = take.begin.is_none() && take.len() < MAX_BATCH / 4;
                let mut take = take;
                if singles {
                    // Let the threads that feed the queue run once and take what they
                    // added: on a machine where this thread shares a core with the
                    // runtime, waking it preempts the runtime at the first code, so
                    // without this every batch would hold one code.
                    MutexGuard::unlocked(&mut s, std::thread::yield_now);
                    let (more, _) = self.take_queued_into(&mut s, take);
                    take = more;
                }
                self.batch.record(take.len() as f64);
                return take;
            }
            match wait {
                Some(d) => {
                    self.ready.wait_for(&mut s, d);
                }
                None => self.ready.wait(&mut s),
            }
        }
    }

    fn take_queued(&self, s: &mut MutexGuard<'_, State>) -> (Take, Option<Duration>) {
        self.take_queued_into(s, Take::default())
    }

    /// Moves queued work into `take` (see [`Pool::take`]); with none to move, how long
    /// until a caller in debt may go on (`None`: wait for new work).
    fn take_queued_into(
        &self,
        s: &mut MutexGuard<'_, State>,
        mut take: Take,
    ) -> (Take, Option<Duration>) {
        let mut wait: Option<Duration> = None;
        let mut idle_rounds = 0;
        // One unit from each caller in turn until the take is full or nobody can give.
        while take.len() < MAX_BATCH && take.begin.is_none() && idle_rounds < 2 {
            let callers = s.turn.len();
            if callers == 0 {
                break;
            }
            let mut gave = false;
            for _ in 0..callers {
                if take.len() >= MAX_BATCH || take.begin.is_some() {
                    break;
                }
                let Some(k) = s.turn.pop_front() else {
                    break;
                };
                let mut dropped = 0;
                let unit = match s.callers.get_mut(&k) {
                    Some(q) => next_unit(q, &mut take, &mut wait, &mut dropped),
                    None => false,
                };
                if dropped > 0 {
                    self.dropped.increment(dropped as u64);
                    self.release(s, k, dropped);
                }
                gave |= unit;
                if s.callers.get(&k).is_some_and(CallerQueue::has_work) {
                    s.turn.push_back(k);
                }
            }
            idle_rounds = if gave { 0 } else { idle_rounds + 1 };
        }
        (take, wait)
    }
}

/// Moves one unit of `q`'s work into `take`: a batch to begin when the take is still
/// empty and the caller has less than a take's worth of begun codes waiting (so its
/// batches keep its groups fed without starving them), else one code of its next group
/// that may go. Returns whether it gave one; `wait` learns how long a group in debt
/// must wait.
fn next_unit(
    q: &mut CallerQueue,
    take: &mut Take,
    wait: &mut Option<Duration>,
    dropped: &mut usize,
) -> bool {
    let room_for_a_batch = || {
        let begun: usize = q.turn.iter().map(|&g| q.groups[g].codes.len()).sum();
        begun < MAX_BATCH
    };
    if take.is_empty() && room_for_a_batch() {
        if let Some(b) = q.batches.pop_front() {
            if b.parts.closed() {
                *dropped += b.items.len();
                return false;
            }
            take.begin = Some((q.caller.clone(), b));
            return true;
        }
    }
    for _ in 0..q.turn.len() {
        let Some(gi) = q.turn.pop_front() else {
            break;
        };
        let g = &mut q.groups[gi];
        // A failing group goes one code at a time, while its caller is not in debt.
        if g.failing() {
            if let Some(d) = q.caller.bad_signature_debt() {
                *wait = Some(wait.map_or(d, |w| w.min(d)));
                q.turn.push_back(gi);
                continue;
            }
            let already = take
                .apart
                .iter()
                .flatten()
                .filter(|t| Arc::ptr_eq(&t.caller, &q.caller) && t.group == gi)
                .count();
            if already > 0 {
                q.turn.push_back(gi);
                continue;
            }
        }
        let Some(code) = g.codes.pop_front() else {
            continue;
        };
        if !g.codes.is_empty() {
            q.turn.push_back(gi);
        }
        if code.reply.closed() {
            *dropped += 1;
            return false;
        }
        let t = Taken {
            code,
            caller: q.caller.clone(),
            group: gi,
            gate: g.gate.clone(),
        };
        if g.suspect() {
            match take.apart.iter_mut().find(|v| {
                v.first()
                    .is_some_and(|f| Arc::ptr_eq(&f.caller, &q.caller) && f.group == gi)
            }) {
                Some(v) => v.push(t),
                None => take.apart.push(vec![t]),
            }
        } else {
            take.together.push(t);
        }
        return true;
    }
    false
}

fn worker(app: &impl Decides) {
    loop {
        let take = app.pool().take();
        let now = app.now();
        if let Some((caller, batch)) = take.begin {
            begin_batch(app, &caller, batch, now);
            continue;
        }
        decide_codes(app, take.together, MAX_BATCH, now);
        for group in take.apart {
            let limit = {
                let s = app.pool().state.lock();
                group
                    .first()
                    .and_then(|t| {
                        let q = s.callers.get(&key(&t.caller))?;
                        let g = q.groups.get(t.group)?;
                        Some(if g.failing() { 1 } else { g.batch_limit() })
                    })
                    .unwrap_or(1)
            };
            decide_codes(app, group, limit, now);
        }
    }
}

/// Begins a batch's items (decoding them; cached and early decisions answered at once)
/// and queues those that wait for a signature in their gates' groups.
fn begin_batch(app: &impl Decides, caller: &Arc<Caller>, batch: Batch, now: u64) {
    let pool = app.pool();
    let mut queued = Vec::new();
    let mut answered = 0;
    for (i, (code, venue, gate)) in batch.items.into_iter().enumerate() {
        match app.verifier().begin(&code, &venue, now) {
            Ok(Begun::Pending(pending)) => queued.push((
                gate,
                Code {
                    pending,
                    reply: Reply::Part(batch.parts.clone(), i),
                },
            )),
            Ok(Begun::Decided(d)) => {
                answered += 1;
                batch.parts.set(i, Ok(Ok(d)));
            }
            Err(e) => {
                answered += 1;
                batch.parts.set(i, Ok(Err(e)));
            }
        }
    }
    if answered > 0 {
        let mut s = pool.state.lock();
        pool.release(&mut s, key(caller), answered);
    }
    pool.queue_begun(caller, queued);
}

/// Decides codes in batch verifications of at most `limit` (one by one at 1), records
/// each signature's outcome against its group and caller, and answers.
fn decide_codes(app: &impl Decides, codes: Vec<Taken>, limit: usize, now: u64) {
    let pool = app.pool();
    let mut rest = codes.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Taken> = rest.by_ref().take(limit.max(1)).collect();
        let mut pending = Vec::with_capacity(chunk.len());
        let mut to = Vec::with_capacity(chunk.len());
        for t in chunk {
            let Taken {
                code,
                caller,
                group,
                gate,
            } = t;
            pending.push(code.pending);
            to.push((code.reply, caller, group, gate));
        }
        let answers: Vec<Answer> = if pending.len() == 1 {
            pending
                .into_iter()
                .map(|p| app.verifier().settle_one(p, now))
                .collect()
        } else {
            let begun = pending.into_iter().map(|p| Ok(Begun::Pending(p))).collect();
            app.verifier().settle(begun, now)
        };
        let mut s = pool.state.lock();
        let mut replies = Vec::with_capacity(to.len());
        for ((reply, caller, group, gate), a) in to.into_iter().zip(answers) {
            if let Ok(d) = &a {
                let passed = d.holder.reason != Reason::BadSignature;
                if !passed {
                    caller.charge_bad_signature();
                }
                Pool::record(&mut s, &caller, group, &gate, passed);
            }
            pool.release(&mut s, key(&caller), 1);
            replies.push((reply, a));
        }
        drop(s);
        for (reply, a) in replies {
            reply.send(Ok(a));
        }
    }
}
