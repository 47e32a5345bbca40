//! The one decision path of a single code (`/v1/verify`, `/v1/auth` and each line of
//! `/v1/verify/stream`), and the caller's rates every code draws on.

use std::sync::Arc;

use gateway_core::Decision;

use super::ApiError;
use crate::app::App;
use crate::callers::{Caller, Refusal};

/// Takes `n` codes from the caller's rate: 429 (the refusal counted) when it is spent.
pub fn take_rate(caller: &Caller, n: u32) -> Result<(), ApiError> {
    caller.take(n).map_err(|r| {
        caller.refused(Refusal::Rate);
        r.into()
    })
}

/// 429 when the caller has spent its budget of failed signatures: its uncached codes
/// are refused before any work.
pub fn signature_budget(caller: &Caller) -> Result<(), ApiError> {
    match caller.bad_signatures_spent() {
        Some(r) => {
            caller.refused(Refusal::BadSignatures);
            Err(r.into())
        }
        None => Ok(()),
    }
}

/// Decides one code, venue checked and rate taken: a code whose signature is cached (or
/// that fails before the signature) is answered at once; the others go to the
/// verification pool, unless the caller has spent its budget of failed signatures.
pub async fn decide_one(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    code: &str,
    venue: &str,
) -> Result<Decision, ApiError> {
    if let Some(d) = app.verifier.decide_if_cached(code, venue, app.now())? {
        app.metrics.decision(d.holder.reason);
        return Ok(d);
    }
    signature_budget(caller)?;
    match app.pool.decide(caller, code.into(), venue.into()).await {
        Ok(Some(answer)) => Ok(answer?),
        Ok(None) => Err(ApiError::Unavailable("verification was interrupted")),
        Err(crate::pool::QueueFull) => Err(ApiError::Overloaded),
    }
}
