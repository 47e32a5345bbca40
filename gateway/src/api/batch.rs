//! `POST /v1/verify/batch`: up to 1,000 requests answered in order; an invalid item gets
//! an error object in its place. Every code checked takes one from the caller's rate.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::value::RawValue;

use super::decide::take_rate;
use super::{check_venue, parse_json, write_decision, ApiError, VerifyRequest};
use crate::app::{App, BATCH_MAX_ITEMS};
use crate::body::{json, RespBody};
use crate::callers::Caller;

/// Answers a batch body (already within its size limit). The decisions are made on the
/// verification pool, all valid items in one call, so cold signatures are
/// batch-verified and the runtime's threads stay free.
pub async fn answer(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    body: &[u8],
) -> Result<Response<RespBody>, ApiError> {
    let items: Vec<&RawValue> = parse_json(body)?;
    if items.len() > BATCH_MAX_ITEMS {
        return Err(ApiError::BatchTooLarge);
    }
    let checked: Vec<Result<VerifyRequest<'_>, ApiError>> = items
        .iter()
        .map(|raw| {
            let req: VerifyRequest<'_> = parse_json(raw.get().as_bytes())?;
            req.gate()?;
            check_venue(app, caller, &req.venue)?;
            Ok(req)
        })
        .collect();
    let valid = checked.iter().filter(|r| r.is_ok()).count();
    take_rate(caller, valid as u32)?;
    let items: Vec<crate::pool::BatchItem> = checked
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|req| {
            (
                req.code.clone().into_owned(),
                req.venue.clone().into_owned(),
                req.gate.as_ref().map(|g| g.clone().into_owned()),
            )
        })
        .collect();
    let decisions = match app.pool.decide_many(caller, items).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(ApiError::Unavailable("verification was interrupted")),
        Err(crate::pool::QueueFull) => return Err(ApiError::Overloaded),
    };
    let mut decisions = decisions.into_iter();
    let mut out = String::with_capacity(16 + checked.len() * 160);
    out.push('[');
    for (i, item) in checked.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // The pool answers every valid item, in order.
        let result = match item {
            Ok(_) => match decisions.next() {
                Some(Ok(answer)) => answer.map_err(ApiError::from),
                // Beyond the caller's share of the verification queue: that item alone.
                Some(Err(crate::pool::QueueFull)) => Err(ApiError::Overloaded),
                None => Err(ApiError::Unavailable("verification was interrupted")),
            },
            Err(e) => Err(*e),
        };
        match result {
            Ok(d) => {
                if let Ok(req) = item {
                    app.metrics.decision(&d, &req.venue);
                }
                write_decision(&mut out, &d, app);
            }
            Err(e) => out.push_str(&e.json()),
        }
    }
    out.push(']');
    Ok(json(StatusCode::OK, out))
}
