//! The production feed: a NATS JetStream stream, read in order with an ordered consumer
//! (ephemeral, flow-controlled, no acks: the gateway keeps its own position). The
//! stream sequence is the position.
//!
//! Faults: the client reconnects by itself with backoff; the ordered consumer recreates
//! itself from the last sequence it delivered; and if the message stream still fails
//! (broker restarted with its store, stream deleted and re-created) this loop builds a
//! new consumer starting after the last position processed. A message at or below that
//! position is never applied twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures_util::{FutureExt, StreamExt};
use gateway_core::trust::RootKey;
use tokio::sync::mpsc::Receiver;
use tokio::sync::watch;

pub use gateway_issuer::nats::{connect, NatsAuth, NatsError};

use crate::app::App;

/// Backoff between attempts to (re)build the consumer: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// During a replay the lag in seconds is measured every this many messages.
const LAG_EVERY: u64 = 1024;
/// Messages received but not yet applied, at most.
const APPLY_QUEUE: usize = 65_536;
/// Messages handed to the applier at once, at most.
const BATCH: usize = 256;

/// Messages in order: (stream sequence, payload).
type Batch = Vec<(u64, bytes::Bytes)>;
/// A replay longer than this many subjects sizes the status set first.
const RESERVE_ABOVE: u64 = 100_000;
/// What a broker (or one in the way) can make the feed say again and again is logged at
/// a bounded rate.
static DELIVERY: crate::logs::Throttle = crate::logs::Throttle::new();

/// Delivery errors in a row before the consumer is rebuilt from our own position.
const MAX_ERRORS_IN_A_ROW: u32 = 3;

/// The stream's last sequence (its head), from a connection of its own; `None` if the
/// broker or the stream cannot be reached.
pub async fn head(url: &str, stream: &str, auth: &NatsAuth) -> Option<(u64, String)> {
    let client = connect(url, auth).await.ok()?;
    let js = jetstream::new(client);
    let mut s = js.get_stream(stream).await.ok()?;
    let info = s.info().await.ok()?;
    Some((info.state.last_sequence, identity(stream, info)))
}

/// The identity of a stream (`feed.md` revision 4), recorded in snapshots: its name and
/// its creation time as the server reports them, so a snapshot of a stream deleted and
/// created again under the same name is not used.
fn identity(name: &str, info: &jetstream::stream::Info) -> String {
    format!("nats:{name}@{}", info.created.unix_timestamp_nanos())
}

/// Follows `stream` from after `app.feed.position()` until `stop` turns true.
pub async fn follow(
    url: String,
    stream: String,
    auth: NatsAuth,
    app: Arc<App>,
    root: Option<RootKey>,
    mut stop: watch::Receiver<bool>,
) {
    let client = tokio::select! {
        c = connect(&url, &auth) => match c {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "NATS feed cannot start");
                return;
            }
        },
        _ = stop.changed() => return,
    };
    let js = jetstream::new(client);
    // Receiving and applying run side by side: the consumer keeps the broker's flow
    // going while a thread of its own parses and applies (measured: a replay ran at
    // 0.64 of a bare consumer's rate with both on one task). The queue is bounded, so
    // a slow apply slows the consumer, never memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(APPLY_QUEUE / BATCH);
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let applier = {
        let (app, target) = (app.clone(), target.clone());
        std::thread::Builder::new()
            .name("feed-apply".into())
            .spawn(move || apply_loop(rx, &app, root.as_ref(), &target))
    };
    let mut pipe = Pipe {
        tx,
        forwarded: app.feed.position(),
        target,
        boot_head: None,
    };
    let mut backoff = BACKOFF_FIRST;
    loop {
        let attempt = run_consumer(&js, &stream, &app, &mut pipe, &mut stop);
        let began = tokio::time::Instant::now();
        match attempt.await {
            Ok(()) => break,
            Err(e) => {
                if began.elapsed() > BACKOFF_MAX * 2 {
                    backoff = BACKOFF_FIRST;
                }
                crate::warn_throttled!(DELIVERY, error = %e, retry_in_ms = backoff.as_millis() as u64, "NATS feed interrupted");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    // Let the applier finish what was received, so the last snapshot holds it.
    drop(pipe);
    if let Ok(handle) = applier {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
}

/// The receiving side of the pipeline, kept across consumers.
struct Pipe {
    tx: tokio::sync::mpsc::Sender<Batch>,
    /// Last position handed to the applier (resuming starts after it).
    forwarded: u64,
    /// The stream's last sequence at boot: caught up once applied (set on first connect).
    target: Arc<AtomicU64>,
    boot_head: Option<u64>,
}

/// Applies messages in order on the applier thread; marks the feed caught up.
fn apply_loop(mut rx: Receiver<Batch>, app: &App, root: Option<&RootKey>, target: &AtomicU64) {
    while let Some(batch) = rx.blocking_recv() {
        for (seq, payload) in batch {
            super::process(app, root, seq, &payload);
            if !app.feed.caught_up() && seq >= target.load(Ordering::Relaxed) {
                app.feed.set_caught_up();
                tracing::info!(position = seq, "feed caught up");
            }
        }
    }
}

/// Records a delivered message into `batch` (skipping one already handed on) and
/// updates the head and lag.
fn take(app: &App, pipe: &mut Pipe, msg: &jetstream::Message, batch: &mut Batch) {
    let Ok(info) = msg.info() else {
        // Not a JetStream delivery: nothing to position it by.
        return;
    };
    let (seq, pending) = (info.stream_sequence, info.pending);
    if seq <= pipe.forwarded {
        return;
    }
    batch.push((seq, msg.payload.clone()));
    pipe.forwarded = seq;
    app.feed.saw_head(seq + pending);
    // The lag in seconds, read off the clock now and then during a replay (a clock read
    // per message showed in profiles), and always once nothing is pending.
    if pending == 0 {
        app.feed.set_lag_time(Duration::ZERO);
    } else if seq % LAG_EVERY == 0 {
        let waited = time::OffsetDateTime::now_utc() - info.published;
        app.feed
            .set_lag_time(waited.try_into().unwrap_or(Duration::ZERO));
    }
}

/// One consumer's life: build it after the current position and apply what it
/// delivers. `Ok` means `stop` fired.
async fn run_consumer(
    js: &jetstream::Context,
    name: &str,
    app: &App,
    pipe: &mut Pipe,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), NatsError> {
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|e| NatsError::Stream(name.to_owned(), e.to_string()))?;
    let info = stream
        .info()
        .await
        .map_err(|e| NatsError::Stream(name.to_owned(), e.to_string()))?;
    app.feed.set_stream_id(identity(name, info));
    let state = info.state.clone();
    let head = state.last_sequence;
    app.feed.saw_head(head);
    if pipe.boot_head.is_none() && app.feed.position() > head {
        // Only when the head could not be learned at boot: the snapshot claimed more.
        tracing::error!(position = app.feed.position(), head, "resumed from a snapshot beyond the stream's head: remove the state directory's snapshots and restart to replay");
    }
    if pipe.boot_head.is_none() {
        pipe.boot_head = Some(head);
        pipe.target.store(head, Ordering::Relaxed);
        if app.feed.position() >= head {
            app.feed.set_caught_up();
            tracing::info!(position = app.feed.position(), "feed caught up");
        }
        // A long replay ahead: size the status set once rather than growing it on the way
        // (at most one subject per stream subject, and per message).
        let ahead = head
            .saturating_sub(app.feed.position())
            .min(state.subjects_count);
        if ahead > RESERVE_ABOVE {
            let status = app.verifier.status();
            status.reserve(status.len() + usize::try_from(ahead).unwrap_or(0));
        }
    }
    let start = pipe.forwarded + 1;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::Consumer(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| NatsError::Consumer(e.to_string()))?;
    tracing::info!(stream = name, start, head, "NATS feed consuming");
    let mut errors_in_a_row = 0u32;
    loop {
        tokio::select! {
            m = messages.next() => {
                // This message and whatever else has already arrived, up to a batch: the
                // applier then wakes once per batch, not once per message.
                let mut batch = Vec::with_capacity(BATCH);
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    match m {
                        Some(Ok(msg)) => {
                            errors_in_a_row = 0;
                            take(app, pipe, &msg, &mut batch);
                        }
                        Some(Err(e)) => {
                            // The ordered consumer recreates itself after most failures;
                            // after several in a row, start over (with backoff) from our
                            // own position.
                            errors_in_a_row += 1;
                            crate::warn_throttled!(DELIVERY, error = %e, "NATS delivery error");
                            if errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
                                let _ = pipe.tx.send(batch).await;
                                return Err(NatsError::Consumer(e.to_string()));
                            }
                        }
                        None => {
                            let _ = pipe.tx.send(batch).await;
                            return Err(NatsError::Consumer("message stream ended".into()));
                        }
                    }
                    if batch.len() < BATCH {
                        next = messages.next().now_or_never();
                    }
                }
                if !batch.is_empty() && pipe.tx.send(batch).await.is_err() {
                    return Ok(());
                }
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}
