//! The admin listener (plain HTTP/1.1, off the public port): `/metrics` in Prometheus
//! text, `/v1/status` (versions, positions, counts; no personal data), and `/healthz`,
//! `/readyz` as on the public port.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::api;
use crate::app::App;
use crate::service::RespBody;

fn respond(status: StatusCode, ctype: &'static str, body: String) -> Response<RespBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn status_json(app: &App) -> String {
    let trust = app.verifier.trust();
    let (hits, misses) = app.verifier.sig_cache().map_or((0, 0), |c| c.hits_misses());
    let rules = app.verifier.rules();
    let (pending, shadow) = crate::rollout::json_fields(&rules);
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "policy_version": rules.in_force().map_or(0, |p| p.version()),
        "pending_policy": pending,
        "shadow_policy_version": shadow,
        "feed_seq": app.feed.position(),
        "feed_applied": app.feed.applied.load(Ordering::Relaxed),
        "feed_rejected": app.feed.rejected.load(Ordering::Relaxed),
        "feed_caught_up": app.feed.caught_up(),
        "feed_head": app.feed.head(),
        "feed_lag": app.feed.lag(),
        "feed_lag_seconds": app.feed.lag_time().as_secs_f64(),
        "feed_resumed_from": app.feed.resumed_from.load(Ordering::Relaxed),
        "stale": app.stale(),
        "dev": app.dev,
        "feed_auth": app.feed_keys.enabled(),
        "quick_start": app.quick_start,
        "status_set_size": app.verifier.status().len(),
        "status_lists": app.verifier.lists().entries().len(),
        "revoked_tokens": app.verifier.revoked_tokens().len(),
        "trust_keys": trust.len(),
        "revoked_keys": trust.revoked().count(),
        "sig_cache_entries": app.verifier.sig_cache().map_or(0, |c| c.len()),
        "sig_cache_hits": hits,
        "sig_cache_misses": misses,
        "uptime_s": app.boot.elapsed().as_secs(),
    })
    .to_string()
}

/// Answers one admin request (served by `listen::tcp::serve_admin`, with the public
/// port's caps and timeouts).
pub fn route<B>(app: &App, req: &Request<B>) -> Response<RespBody> {
    match req.uri().path() {
        "/metrics" => {
            let m = &app.metrics;
            m.status_set_size.set(app.verifier.status().len() as f64);
            m.status_lists(&app.verifier.lists(), app.now());
            m.feed_position.set(app.feed.position() as f64);
            m.feed_head.set(app.feed.head() as f64);
            m.feed_lag_messages.set(app.feed.lag() as f64);
            m.feed_lag_seconds.set(app.feed.lag_time().as_secs_f64());
            m.feed_stale.set(if app.stale() { 1.0 } else { 0.0 });
            let ready = app.not_ready_reasons().is_empty();
            m.ready.set(if ready { 1.0 } else { 0.0 });
            if let Some(c) = app.verifier.sig_cache() {
                let (h, mi) = c.hits_misses();
                m.sig_cache_hits.set(h as f64);
                m.sig_cache_misses.set(mi as f64);
            }
            respond(StatusCode::OK, "text/plain; version=0.0.4", m.render())
        }
        "/v1/status" => respond(StatusCode::OK, "application/json", status_json(app)),
        "/healthz" => respond(
            StatusCode::OK,
            "application/json",
            api::readiness_json(app).1,
        ),
        "/readyz" => {
            let (ready, body) = api::readiness_json(app);
            let s = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(s, "application/json", body)
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "application/json",
            api::ApiError::NotFound.json(),
        ),
    }
}
