//! The one decision path of a single code (`/v1/verify`, `/v1/auth` and each line of
//! `/v1/verify/stream`), and the caller's rates every code draws on.

use std::sync::Arc;

use gateway_core::decide::Begun;
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

/// Decides one code, venue checked and rate taken, on the core's one pipeline: begun
/// here (decoded once; a code whose signature is cached, or that fails before its
/// signature, is decided at once), settled on the verification pool otherwise, in the
/// caller's and the gate's turn (`pool.rs`: fair verification). The decision metric is
/// recorded here, once, whichever way it went.
pub async fn decide_one(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    code: &str,
    venue: &str,
    gate: Option<&str>,
) -> Result<Decision, ApiError> {
    let d = match app.verifier.begin(code, venue, app.now())? {
        Begun::Decided(d) => d,
        Begun::Pending(pending) => match app.pool.settle(caller, gate, pending).await {
            Ok(Some(answer)) => answer?,
            Ok(None) => return Err(ApiError::Unavailable("verification was interrupted")),
            Err(crate::pool::QueueFull) => return Err(ApiError::Overloaded),
        },
    };
    app.metrics.decision(&d, venue);
    Ok(d)
}
