//! The proxy endpoint, `/v1/auth` (and any path under it, for Envoy's `path_prefix`):
//! for nginx `auth_request` and Envoy's HTTP `ext_authz`. The proxy forwards the door's
//! request (any method; its body is not read); the code and the venue come from request
//! headers (`--auth-code-header`, default `x-jkm-code`; `--auth-venue-header`, default
//! `x-jkm-venue`), the caller from `Authorization` as everywhere. The decision is the
//! one `/v1/verify` makes (`api::decide::decide_one`); only its form differs:
//!
//! | answer | when | nginx `auth_request` | Envoy `ext_authz` |
//! | --- | --- | --- | --- |
//! | 200, empty body | the holder is admitted | passes the request on | passes it on |
//! | 403, decision JSON | denied, or the request cannot be admitted (no code, unknown venue, out of scope) | 403 to the client | 403 and the body to the client |
//! | 401 | no or unknown credentials | 401 | 401 |
//! | 503, `Retry-After` | the gateway cannot decide now (overloaded, over the caller's rate, not configured) | an error: map it with `error_page` | 503 |
//!
//! Every answer carries `x-jkm-decision` (`allow`, `deny`, or `none` when nothing was
//! decided) and `x-jkm-reason` (a reason code of `api.md`, or an error code); an allow
//! also `x-jkm-color` and `x-jkm-conditions` (comma-separated, possibly empty), which
//! the proxy may copy into the upstream request. Nothing personal is in them.
//!
//! A code's Base45 text may end in a space, which HTTP trims from a header value; such
//! a code (about one in 45) is sent percent-encoded: a value starting `JKM1%3A` (the
//! prefix with its colon encoded) is percent-decoded first. A raw code starts `JKM1:`,
//! so the two never meet.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::ApiError;
use crate::app::App;
use crate::body::RespBody;
use crate::callers::Caller;
pub use crate::config::AuthHeaders;

const DECISION: HeaderName = HeaderName::from_static("x-jkm-decision");
const REASON: HeaderName = HeaderName::from_static("x-jkm-reason");
const COLOR: HeaderName = HeaderName::from_static("x-jkm-color");
const CONDITIONS: HeaderName = HeaderName::from_static("x-jkm-conditions");
const RECEIPT: HeaderName = HeaderName::from_static("x-jkm-receipt");
/// The door's gate id, set by the proxy from its own configuration (fair verification).
const GATE: HeaderName = HeaderName::from_static("x-jkm-gate");

/// Answers a proxied request (its head: the body is never read).
pub async fn answer(
    app: &std::sync::Arc<App>,
    caller: &std::sync::Arc<Caller>,
    head: &http::request::Parts,
) -> Result<Response<RespBody>, ApiError> {
    let (code, venue) = code_and_venue(app, head)?;
    let gate = head.headers.get(GATE).and_then(|v| v.to_str().ok());
    let gate = super::checked_gate(gate)?;
    super::check_venue(app, caller, &venue)?;
    super::decide::take_rate(caller, 1)?;
    let d = super::decide::decide_one(app, caller, &code, &venue, gate).await?;
    Ok(decided(&d, app))
}

/// The code and the venue of a proxied request: 403 `bad_request` without either.
pub fn code_and_venue(app: &App, req: &http::request::Parts) -> Result<(String, String), ApiError> {
    let h = &app.auth_headers;
    let get = |name: &HeaderName| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let code = get(&h.code).ok_or(ApiError::BadRequest("no code header"))?;
    let venue = get(&h.venue).ok_or(ApiError::BadRequest("no venue header"))?;
    let code = match code.strip_prefix("JKM1%3A") {
        Some(_) => percent_decode(code).ok_or(ApiError::BadRequest("bad percent-encoding"))?,
        None => code.to_string(),
    };
    Ok((code, venue.to_string()))
}

/// Percent-decodes `s` (`%XX` only; anything else as it is); `None` on a bad escape or
/// bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond(status: StatusCode, body: String) -> Response<RespBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    if r.status() != StatusCode::OK {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    r
}

/// The answer to a decision (`api.md` revision 4): 200 only when the holder and every
/// companion are allowed (a door opens for everyone the code brings), 403 otherwise.
pub fn decided(d: &gateway_core::Decision, app: &App) -> Response<RespBody> {
    let j = &d.holder;
    let allow = d.everyone_allowed();
    let mut r = if allow {
        respond(StatusCode::OK, String::new())
    } else {
        respond(StatusCode::FORBIDDEN, super::decision_json(d, app))
    };
    let h = r.headers_mut();
    let (decision, reason) = match (allow, j.verdict) {
        (true, _) => ("allow", j.reason.label()),
        (false, gateway_core::Verdict::Allow) => ("deny", COMPANION_DENIED),
        (false, _) => ("deny", j.reason.label()),
    };
    h.insert(DECISION, HeaderValue::from_static(decision));
    h.insert(REASON, HeaderValue::from_static(reason));
    if !allow {
        // The holder's receipt, or the first denied companion's (api.md revision 4).
        if let Some(r) = d.first_receipt() {
            if let Ok(v) = HeaderValue::from_str(r.as_str()) {
                h.insert(RECEIPT, v);
            }
        }
    }
    if allow {
        if let Some(c) = j.color {
            h.insert(COLOR, HeaderValue::from_static(c.name()));
        }
        let conditions: Vec<&str> = d.everyones_conditions().names().collect();
        if let Ok(v) = HeaderValue::from_str(&conditions.join(",")) {
            h.insert(CONDITIONS, v);
        }
    }
    r
}

/// `x-jkm-reason` when the holder is allowed and a companion is not.
pub const COMPANION_DENIED: &str = "companion_denied";

/// An error of a proxied request in the form proxies understand: 401 as it is, 503 when
/// the gateway cannot decide now, 403 for everything else (a request that cannot be
/// admitted: nginx turns any status but 2xx, 401 and 403 into a 500).
pub fn refused(e: ApiError) -> Response<RespBody> {
    let status = match e {
        ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
        ApiError::RateLimited { .. }
        | ApiError::Overloaded
        | ApiError::Unavailable(_)
        | ApiError::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::FORBIDDEN,
    };
    let mut r = respond(status, e.json());
    let h = r.headers_mut();
    h.insert(DECISION, HeaderValue::from_static("none"));
    h.insert(REASON, HeaderValue::from_static(e.code()));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(RETRY_AFTER, HeaderValue::from(e.retry_after().unwrap_or(1)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("JKM1%3AAB%20").as_deref(), Some("JKM1:AB "));
        assert_eq!(percent_decode("JKM1%3A%2"), None);
        assert_eq!(percent_decode("JKM1%3A%zz"), None);
        assert_eq!(percent_decode("JKM1%3A%FF"), None);
        assert_eq!(percent_decode("JKM1%3A%+1"), None);
        assert_eq!(percent_decode("%e4%b8%ad").as_deref(), Some("中"));
    }

    #[test]
    fn every_error_is_401_403_or_503() {
        for e in [
            ApiError::Unauthorized,
            ApiError::BadRequest("x"),
            ApiError::UnknownVenue,
            ApiError::ForbiddenVenue,
            ApiError::RateLimited { retry_after_s: 3 },
            ApiError::Overloaded,
            ApiError::Unavailable("x"),
        ] {
            let r = refused(e);
            assert!([401, 403, 503].contains(&r.status().as_u16()), "{e:?}");
            assert_eq!(r.headers()[&REASON], e.code());
        }
        assert_eq!(
            refused(ApiError::RateLimited { retry_after_s: 3 }).headers()[RETRY_AFTER],
            "3"
        );
    }
}
