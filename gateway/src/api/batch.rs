//! `POST /v1/verify/batch`: up to 1,000 requests answered in order; an invalid item gets
//! an error object in its place. Every code checked takes one from the caller's rate.

use serde_json::value::RawValue;

use super::{check_venue, decide, parse_json, write_decision, ApiError, VerifyRequest};
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
    let mut out = String::with_capacity(16 + checked.len() * 160);
    out.push('[');
    for (i, item) in checked.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item
            .as_ref()
            .map_err(|e| *e)
            .and_then(|req| decide(app, req))
        {
            Ok(d) => write_decision(&mut out, &d, app),
            Err(e) => out.push_str(&e.json()),
        }
    }
    out.push(']');
    Ok(out)
}
