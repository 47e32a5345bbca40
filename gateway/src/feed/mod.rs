//! The change stream into the core: each source reads messages in order and hands each
//! (with its position) to [`process`], which parses, applies and records it. Sources:
//! the embedded default, a local JSON-lines file ([`file`](mod@file)), and NATS JetStream
//! ([`nats`]). [`run`] wraps either: it loads the newest snapshot first ([`snapshot`]),
//! resumes after its position, writes snapshots as it goes and a last one on stop.

pub mod file;
pub mod nats;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::feed::life::Beat;
use gateway_core::feed_event;
use gateway_core::trust::RootKey;
use tokio::sync::watch;

use crate::app::App;
use gateway_issuer::nats::NatsAuth;
use gateway_issuer::FeedSource;

/// How a feed is run.
pub struct FeedPlan {
    pub source: FeedSource,
    pub nats: NatsAuth,
    pub state_dir: PathBuf,
    pub snapshot_every: Option<Duration>,
}

/// Loads the newest snapshot, then follows the source until `stop`; then writes a last
/// snapshot. Returns when that is on disk.
pub async fn run(
    plan: FeedPlan,
    app: Arc<App>,
    root: Option<RootKey>,
    stop: watch::Receiver<bool>,
) {
    let store = snapshot::Store::new(&plan.state_dir, &plan.source, &app, root.clone());
    // A snapshot may not claim a position the stream has not reached, nor come from
    // another stream of the same name (feed.md revision 4).
    let (head, identity) = head_of(&plan.source, &plan.nats).await;
    if let Some(id) = &identity {
        app.feed.set_stream_id(id.clone());
    }
    let loaded = {
        let (store, app2) = (store.clone(), app.clone());
        let loaded = tokio::task::spawn_blocking(move || store.load(&app2, head, identity))
            .await
            .unwrap_or_default();
        // Whatever happened to the load, decisions go on.
        app.feed.set_restoring(false);
        loaded
    };
    app.feed.resume_at(loaded.position);
    let rate = tokio::spawn(apply_rate(app.clone(), stop.clone()));
    let forgetting = tokio::spawn(forgetting(app.clone(), stop.clone()));
    let snapshots = tokio::spawn(snapshots(
        store,
        plan.snapshot_every,
        loaded.position,
        app.clone(),
        stop.clone(),
    ));
    match plan.source {
        FeedSource::File(path) => file::follow(path, app.clone(), root, stop).await,
        FeedSource::Nats { url, stream } => {
            nats::follow(url, stream, plan.nats, app.clone(), root, stop).await
        }
    }
    rate.abort();
    forgetting.abort();
    let _ = snapshots.await;
}

/// How long boot waits to learn the stream's head before loading a snapshot unchecked.
const HEAD_PROBE: Duration = Duration::from_secs(5);

/// The stream's last position (the file's complete lines, or the NATS stream's last
/// sequence) and its identity; `None` if they cannot be learned now. Without the head
/// the snapshot is loaded without that check (the follower reports a position beyond
/// the head once it connects); without the identity no snapshot is used (a broker down
/// at boot: the stream is replayed once it is back).
async fn head_of(source: &FeedSource, auth: &NatsAuth) -> (Option<u64>, Option<String>) {
    match source {
        FeedSource::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                (file::complete_lines(&path).ok(), file::identity(&path).ok())
            })
            .await
            .unwrap_or_default()
        }
        FeedSource::Nats { url, stream } => {
            match tokio::time::timeout(HEAD_PROBE, nats::head(url, stream, auth)).await {
                Ok(Some((head, id))) => (Some(head), Some(id)),
                _ => (None, None),
            }
        }
    }
}

/// Writes a snapshot every `every` when the position moved, and one on stop.
async fn snapshots(
    store: snapshot::Store,
    every: Option<Duration>,
    mut last: u64,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = async {
            match every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let stopping = tokio::select! {
            _ = wait => false,
            _ = stop.changed() => true,
        };
        let position = app.feed.position();
        // Periodic ones only once caught up (mid-replay one would be overtaken at once);
        // on stop always, so an interrupted replay is not lost.
        if position > last && (stopping || app.feed.caught_up()) {
            let (s, a) = (store.clone(), app.clone());
            match tokio::task::spawn_blocking(move || s.save(&a, position)).await {
                Ok(Ok(_)) => last = position,
                Ok(Err(e)) => tracing::error!(error = %e, "snapshot not written"),
                Err(e) => tracing::error!(error = %e, "snapshot task failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// How often the forgetting rules of `feed.md` run.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Runs the forgetting rules of `feed.md` every [`FORGET_EVERY`], whatever the source.
async fn forgetting(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (s, r) = app.verifier.forget(app.now());
        // Lists past their `exp` go with their updates (offline.md).
        app.verifier.drop_expired_lists(app.now());
        tracing::debug!(statuses = s, revocations = r, "forgetting rules ran");
    }
}

/// Sets the events-applied-per-second gauge once a second; while catching up with the
/// stream, logs the position, the head, the rate and the time left every few seconds.
async fn apply_rate(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut before = app.feed.applied.load(Ordering::Relaxed);
    let mut replay = crate::logs::Progress::new("replay", app.feed.position());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = app.feed.applied.load(Ordering::Relaxed);
        app.metrics.feed_apply_rate.set((now - before) as f64);
        before = now;
        if !app.feed.caught_up() {
            replay.at(app.feed.position(), app.feed.head());
        }
    }
}

/// Skipped messages are logged at most a few lines a second (a poisoned feed must not
/// flood the log).
static SKIPPED: crate::logs::Throttle = crate::logs::Throttle::new();

/// Heartbeats that did not count are logged at most a few lines a second.
static BEATS: crate::logs::Throttle = crate::logs::Throttle::new();

/// Parses and applies the message at `position`. A bad message is counted and logged
/// by kind and position only (its content may hold pseudonyms), and never stops the feed.
/// Only an authenticated, fresh, newer heartbeat is a sign of life (`feed.md` revision 4).
pub fn process(app: &App, root: Option<&RootKey>, position: u64, msg: &[u8]) {
    if msg.iter().all(u8::is_ascii_whitespace) {
        app.feed.passed_over(position);
        return;
    }
    match feed_event::parse_with(msg, root, &app.feed_keys) {
        Ok(feed_event::Event::Heartbeat { at, prev }) => {
            let beat = app.feed.heartbeat(
                position,
                at,
                prev,
                app.now(),
                app.life_window(),
                app.boot.elapsed(),
            );
            app.metrics.feed_applied.increment(1);
            app.feed.applied.fetch_add(1, Ordering::Relaxed);
            if beat != Beat::Alive {
                metrics::counter!("gateway_feed_heartbeats_ignored_total", "why" => beat.label())
                    .increment(1);
                crate::warn_throttled!(
                    BEATS,
                    position,
                    why = beat.label(),
                    "heartbeat not counted as a sign of life"
                );
            }
            return;
        }
        Ok(ev) => match app.verifier.apply(ev, app.now()) {
            Ok(gateway_core::decide::Applied::KeyKept) => {
                app.feed.rejected.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("gateway_feed_rejected_total", "kind" => crate::metrics::KEY_OLDER)
                    .increment(1);
                crate::warn_throttled!(
                    SKIPPED,
                    position,
                    kind = crate::metrics::KEY_OLDER,
                    "key document older than the one held for its kid; not applied"
                );
            }
            Ok(applied) => {
                app.feed.applied.fetch_add(1, Ordering::Relaxed);
                app.metrics.feed_applied.increment(1);
                if let gateway_core::decide::Applied::Policy(change) = applied {
                    crate::rollout::changed(app, change);
                }
            }
            Err(e) => {
                app.feed.rejected.fetch_add(1, Ordering::Relaxed);
                let kind = e.kind();
                metrics::counter!("gateway_feed_rejected_total", "kind" => kind).increment(1);
                crate::warn_throttled!(SKIPPED, position, kind = kind, error = %e, "feed message refused");
            }
        },
        Err(e) => {
            app.feed.rejected.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("gateway_feed_rejected_total", "kind" => e.kind()).increment(1);
            crate::warn_throttled!(SKIPPED, position, kind = e.kind(), error = %e, "feed message skipped");
        }
    }
    app.feed.passed_over(position);
}

/// Records a line over the length limit as a skipped message at `position`.
pub fn too_long(app: &App, position: u64) {
    app.feed.rejected.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("gateway_feed_rejected_total", "kind" => crate::metrics::TOO_LONG)
        .increment(1);
    crate::warn_throttled!(
        SKIPPED,
        position,
        kind = crate::metrics::TOO_LONG,
        "feed message skipped"
    );
    app.feed.passed_over(position);
}
