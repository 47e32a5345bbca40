//! `POST /v1/verify/batch`: up to 1,000 requests answered in order; an invalid item gets
//! an error object in its place. Every code checked takes one from the caller's rate.

use serde_json::value::RawValue;

use super::{check_venue, parse_json, write_decision, ApiError, VerifyRequest};
use crate::app::{App, BATCH_MAX_ITEMS};
use crate::callers::Caller;

/// Answers a batch body (already within its size limit).
pub fn answer(app: &App, caller: &Caller, body: &[u8]) -> Result<String, ApiError> {
    let items: Vec<&RawValue> = parse_json(body)?;
    if items.len() > BATCH_MAX_ITEMS {
        return Err(ApiError::BatchTooLarge);
    }
    let checked: Vec<Result<VerifyRequest<'_>, ApiError>> = items
        .iter()
        .map(|raw| {
            let req: VerifyRequest<'_> = parse_json(raw.get().as_bytes())?;
            check_venue(app, caller, &req.venue)?;
            Ok(req)
        })
        .collect();
    let valid = checked.iter().filter(|r| r.is_ok()).count();
    caller
        .take(valid as u32)
        .map_err(|r| ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        })?;
    // Every valid item is decided in one call, so cold signatures are batch-verified.
    let items: Vec<(&str, &str)> = checked
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|req| (req.code.as_ref(), req.venue.as_ref()))
        .collect();
    let mut decisions = app.verifier.decide_many(&items, app.now()).into_iter();
    let mut out = String::with_capacity(16 + checked.len() * 160);
    out.push('[');
    for (i, item) in checked.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let result = match item {
            Ok(_) => decisions
                .next()
                .unwrap_or(Err(gateway_core::RequestError::NoPolicy))
                .map_err(ApiError::from),
            Err(e) => Err(*e),
        };
        match result {
            Ok(d) => {
                app.metrics.decision(d.holder.reason);
                write_decision(&mut out, &d, app);
            }
            Err(e) => out.push_str(&e.json()),
        }
    }
    out.push(']');
    Ok(out)
}
