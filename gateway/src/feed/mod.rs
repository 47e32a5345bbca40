//! The change stream into the core: each source reads messages in order and hands each
//! (with its position) to [`process`], which parses, applies and records it. Sources:
//! the embedded default, a local JSON-lines file ([`file`]).

pub mod file;

use gateway_core::feed_event;
use gateway_core::trust::RootKey;

use crate::app::App;

/// Parses and applies the message at `position`. A bad message is counted and logged
/// by kind and position only (its content may hold pseudonyms), and never stops the feed.
pub fn process(app: &App, root: Option<&RootKey>, position: u64, msg: &[u8]) {
    if msg.iter().all(u8::is_ascii_whitespace) {
        app.feed.processed(position, app.boot.elapsed());
        return;
    }
    match feed_event::parse(msg, root) {
        Ok(ev) => match app.verifier.apply(ev) {
            Ok(_) => {
                app.feed
                    .applied
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                app.metrics.feed_applied.increment(1);
            }
            Err(e) => {
                app.feed
                    .rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("gateway_feed_rejected_total", "kind" => "policy_version")
                    .increment(1);
                tracing::warn!(position, error = %e, "feed message refused");
            }
        },
        Err(e) => {
            app.feed
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("gateway_feed_rejected_total", "kind" => e.kind()).increment(1);
            tracing::warn!(position, kind = e.kind(), error = %e, "feed message skipped");
        }
    }
    app.feed.processed(position, app.boot.elapsed());
}

/// Records a line over the length limit as a skipped message at `position`.
pub fn too_long(app: &App, position: u64) {
    app.feed
        .rejected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("gateway_feed_rejected_total", "kind" => "too_long").increment(1);
    tracing::warn!(position, kind = "too_long", "feed message skipped");
    app.feed.processed(position, app.boot.elapsed());
}
