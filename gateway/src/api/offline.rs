//! What offline gates fetch (`api.md` and `offline.md`, revision 4): a status list as
//! published (`GET /v1/status-lists/NAME`), its updates (`…/updates?base=&after=`) and
//! the bundle (`GET /v1/offline/bundle`). Only for callers with `"offline": true`; each
//! request counts once against the caller's rate. The bytes are the ones the feed
//! brought, shared, not copied per request; the bundle is made once per state of the
//! feed and shared by every request until the state changes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::decide::take_rate;
use super::ApiError;
use crate::app::App;
use crate::body::RespBody;
use crate::callers::Caller;

/// `max-age` when a list has no `ttl`.
const DEFAULT_MAX_AGE: u64 = 60;

/// Answers a GET on an offline route, in the order of `api.md`: 403, 429, then 400,
/// 404, 409.
pub fn answer(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    head: &Parts,
) -> Result<Response<RespBody>, ApiError> {
    if !caller.offline {
        return Err(ApiError::ForbiddenOffline);
    }
    take_rate(caller, 1)?;
    let path = head.uri.path();
    if path == "/v1/offline/bundle" {
        let body = app.bundle();
        app.metrics.offline_bytes(body.len());
        return Ok(respond(StatusCode::OK, "application/x-ndjson", body));
    }
    let rest = path
        .strip_prefix("/v1/status-lists/")
        .ok_or(ApiError::NotFound)?;
    match rest.strip_suffix("/updates") {
        Some(name) => updates(app, name, head.uri.query()),
        None => list(app, rest, head),
    }
}

fn list(app: &App, name: &str, head: &Parts) -> Result<Response<RespBody>, ApiError> {
    let lists = app.verifier.lists();
    let e = lists.by_name(name).ok_or(ApiError::UnknownStatusList)?;
    let l = e.held().list();
    let etag = format!("\"{}\"", l.iat);
    let max_age = format!("max-age={}", l.ttl.unwrap_or(DEFAULT_MAX_AGE));
    let fresh = head
        .headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        respond(
            StatusCode::NOT_MODIFIED,
            "application/statuslist+cwt",
            Bytes::new(),
        )
    } else {
        let body = e.list_bytes().clone();
        app.metrics.offline_bytes(body.len());
        respond(StatusCode::OK, "application/statuslist+cwt", body)
    };
    for (k, v) in [(ETAG, etag), (CACHE_CONTROL, max_age)] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

fn updates(app: &App, name: &str, query: Option<&str>) -> Result<Response<RespBody>, ApiError> {
    let number = |key: &str| -> Result<u64, ApiError> {
        super::verify::query_param(query, key)
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::BadRequest(
                "base and after must be unsigned integers",
            ))
    };
    let (base, after) = (number("base")?, number("after")?);
    let lists = app.verifier.lists();
    let e = lists.by_name(name).ok_or(ApiError::UnknownStatusList)?;
    if e.held().list().iat != base {
        return Err(ApiError::StatusListReplaced);
    }
    // RFC 8742: the items one after the other.
    let items = e.updates_after(after);
    let mut body = BytesMut::with_capacity(items.iter().map(Bytes::len).sum());
    for u in items {
        body.extend_from_slice(u);
    }
    app.metrics.offline_bytes(body.len());
    Ok(respond(
        StatusCode::OK,
        "application/cbor-seq",
        body.freeze(),
    ))
}

fn respond(status: StatusCode, ctype: &'static str, body: Bytes) -> Response<RespBody> {
    let mut r = Response::new(Full::new(body).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}
