//! The HTTP API of `api.md`, independent of the protocol: request shapes, the checks
//! each item goes through, the JSON answers, and every error mapped to its status in one
//! place ([`ApiError`]). Answers and errors never carry the code, a number, a pseudonym
//! or a token id.

pub mod auth;
pub mod batch;
pub mod card;
pub mod decide;
pub mod offline;
pub mod stream;
pub mod verify;

use std::borrow::Cow;
use std::fmt::Write as _;

use gateway_core::pseudonym::CardKind;
use gateway_core::{Decision, RequestError};
use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::callers::Caller;

/// Every error a request can get, checked in the order of `api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    Unauthorized,
    BodyTooLarge,
    /// The body did not arrive within `--body-timeout`.
    RequestTimeout,
    BadRequest(&'static str),
    UnknownVenue,
    UnknownCardKind,
    BatchTooLarge,
    ForbiddenVenue,
    /// The caller has no `card_rate_per_s`.
    ForbiddenCard,
    /// The caller's entry lacks `"offline": true` (status lists, the bundle).
    ForbiddenOffline,
    /// No status list of that NAME is held.
    UnknownStatusList,
    /// `base` is not the held list's `iat`: the list was replaced.
    StatusListReplaced,
    RateLimited {
        retry_after_s: u64,
    },
    Overloaded,
    NotFound,
    /// A known path with another method; the methods it allows (RFC 9110: `Allow`).
    MethodNotAllowed(&'static str),
    /// No policy loaded, or card checks without a pseudonym key.
    Unavailable(&'static str),
}

impl ApiError {
    pub fn status(self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadRequest(_)
            | ApiError::UnknownVenue
            | ApiError::UnknownCardKind
            | ApiError::BatchTooLarge => StatusCode::BAD_REQUEST,
            ApiError::ForbiddenVenue | ApiError::ForbiddenCard | ApiError::ForbiddenOffline => {
                StatusCode::FORBIDDEN
            }
            ApiError::UnknownStatusList => StatusCode::NOT_FOUND,
            ApiError::StatusListReplaced => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnknownVenue => "unknown_venue",
            ApiError::UnknownCardKind => "unknown_card_kind",
            ApiError::BatchTooLarge => "batch_too_large",
            ApiError::ForbiddenVenue => "forbidden_venue",
            ApiError::ForbiddenCard => "forbidden_card",
            ApiError::ForbiddenOffline => "forbidden_offline",
            ApiError::UnknownStatusList => "unknown_status_list",
            ApiError::StatusListReplaced => "status_list_replaced",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ApiError::Unauthorized => "missing or unknown credentials",
            ApiError::BodyTooLarge => "request body over its limit",
            ApiError::RequestTimeout => "request body did not arrive in time",
            ApiError::BadRequest(m) | ApiError::Unavailable(m) => m,
            ApiError::UnknownVenue => "venue category not in the policy in force",
            ApiError::UnknownCardKind => {
                "card_kind must be id_card, passport, permit or citizen_card"
            }
            ApiError::BatchTooLarge => "a batch holds at most 1000 requests",
            ApiError::ForbiddenVenue => "venue outside this caller's scope",
            ApiError::ForbiddenCard => "this caller may not make card checks",
            ApiError::ForbiddenOffline => "this caller may not fetch status lists",
            ApiError::UnknownStatusList => "no status list of that name is held",
            ApiError::StatusListReplaced => {
                "the status list was replaced: fetch it again, then its updates"
            }
            ApiError::RateLimited { .. } => "over this caller's request rate",
            ApiError::Overloaded => "gateway over its concurrency limit",
            ApiError::NotFound => "no such route",
            ApiError::MethodNotAllowed(_) => "method not allowed on this route",
        }
    }

    /// Seconds for `Retry-After`, where one applies.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_s } => Some(retry_after_s),
            ApiError::Overloaded => Some(1),
            _ => None,
        }
    }

    /// `{"error": ..., "message": ...}`.
    /// The one place an error becomes a response (with `Retry-After` where it has one).
    pub fn response(self) -> http::Response<crate::body::RespBody> {
        let mut r = crate::body::json(self.status(), self.json());
        if let Some(s) = self.retry_after() {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(s));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            r.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        r
    }

    pub fn json(self) -> String {
        format!(
            r#"{{"error":"{}","message":"{}"}}"#,
            self.code(),
            self.message()
        )
    }
}

impl From<crate::callers::RateLimited> for ApiError {
    fn from(r: crate::callers::RateLimited) -> Self {
        ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        }
    }
}

impl From<crate::body::BodyError> for ApiError {
    fn from(e: crate::body::BodyError) -> Self {
        match e {
            crate::body::BodyError::TooLarge => ApiError::BodyTooLarge,
            crate::body::BodyError::TimedOut => ApiError::RequestTimeout,
            crate::body::BodyError::Unreadable => {
                ApiError::BadRequest("request body could not be read")
            }
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::UnknownVenue => ApiError::UnknownVenue,
            RequestError::NoPolicy => ApiError::Unavailable("no policy loaded"),
            RequestError::NoPseudonymKey => {
                ApiError::Unavailable("card checks are not configured on this gateway")
            }
        }
    }
}

/// A verify request (`POST /v1/verify`, and each item of a batch or stream).
#[derive(Debug, Deserialize)]
pub struct VerifyRequest<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(borrow)]
    pub venue: Cow<'a, str>,
    /// The gate that scanned it: codes are verified in turn by gate (`api.md` revision
    /// 4, fair verification). At most 64 bytes.
    #[serde(default, borrow)]
    pub gate: Option<Cow<'a, str>>,
}

impl VerifyRequest<'_> {
    /// The gate, checked: 400 `bad_request` when longer than 64 bytes.
    pub fn gate(&self) -> Result<Option<&str>, ApiError> {
        checked_gate(self.gate.as_deref())
    }
}

/// A gate id as given (a request's `gate`, `/v1/auth`'s `x-jkm-gate`): at most 64 bytes.
pub fn checked_gate(gate: Option<&str>) -> Result<Option<&str>, ApiError> {
    match gate {
        Some(g) if g.len() > crate::pool::MAX_GATE_LEN => {
            Err(ApiError::BadRequest("gate longer than 64 bytes"))
        }
        g => Ok(g),
    }
}

/// A card check (`POST /v1/verify/card`).
#[derive(Debug, Deserialize)]
pub struct CardRequest<'a> {
    #[serde(borrow)]
    pub card_kind: Cow<'a, str>,
    #[serde(borrow)]
    pub number: Cow<'a, str>,
    #[serde(borrow)]
    pub venue: Cow<'a, str>,
}

/// Parses a JSON request; any failure is `bad_request` without echoing the input.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::BadRequest("malformed JSON or missing fields"))
}

/// The venue checks before a decision: known to the policy (400), then in the caller's
/// scope (403).
pub fn check_venue(app: &App, caller: &Caller, venue: &str) -> Result<(), ApiError> {
    known_venue(app, venue)?;
    in_scope(caller, venue)
}

/// 400 `unknown_venue` unless the policy in force has the category.
pub fn known_venue(app: &App, venue: &str) -> Result<(), ApiError> {
    let policy = app
        .verifier
        .policy()
        .ok_or(ApiError::Unavailable("no policy loaded"))?;
    match policy.venue(venue) {
        Some(_) => Ok(()),
        None => Err(ApiError::UnknownVenue),
    }
}

/// 403 `forbidden_venue` unless the caller may claim the venue.
pub fn in_scope(caller: &Caller, venue: &str) -> Result<(), ApiError> {
    if caller.may_use(venue) {
        Ok(())
    } else {
        Err(ApiError::ForbiddenVenue)
    }
}

/// Decides a card check whose venue was checked and whose rate was taken.
pub fn decide_card(app: &App, req: &CardRequest<'_>) -> Result<Decision, ApiError> {
    let kind = CardKind::from_name(&req.card_kind).ok_or(ApiError::UnknownCardKind)?;
    let d = app
        .verifier
        .decide_card(kind, &req.number, &req.venue, app.now())?;
    app.metrics.decision(&d, &req.venue);
    Ok(d)
}

/// Appends a decision as the API writes it: the core's shape of a decision (shared with
/// the offline validator), then the gateway's own fields.
pub fn write_decision(out: &mut String, d: &Decision, app: &App) {
    gateway_core::decide::answer::write_decision(out, d);
    let _ = write!(
        out,
        r#","feed_seq":{},"stale":{}}}"#,
        app.feed.position(),
        app.stale()
    );
}

/// A decision as a JSON string.
pub fn decision_json(d: &Decision, app: &App) -> String {
    let mut s = String::with_capacity(160);
    write_decision(&mut s, d, app);
    s
}

/// The `/healthz` and `/readyz` body.
pub fn readiness_json(app: &App) -> (bool, String) {
    let reasons = app.not_ready_reasons();
    let rules = app.verifier.rules();
    let (pending, shadow) = crate::rollout::json_fields(&rules);
    let mut s = String::with_capacity(200);
    let _ = write!(
        s,
        r#"{{"ready":{},"reasons":{},"warnings":{},"feed_seq":{},"policy_version":{},"pending_policy":{},"shadow_policy_version":{},"stale":{},"dev":{},"feed_auth":{},"quick_start":{},"fixed_clock":{},"version":"{}"}}"#,
        reasons.is_empty(),
        serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(&app.warnings()).unwrap_or_else(|_| "[]".into()),
        app.feed.position(),
        rules.in_force().map_or(0, |p| p.version()),
        pending,
        shadow,
        app.stale(),
        app.dev,
        app.feed_keys.enabled(),
        app.quick_start,
        app.fixed_now.is_some(),
        env!("CARGO_PKG_VERSION")
    );
    (reasons.is_empty(), s)
}
