//! `POST /v1/verify/card`: a card reader's document number checked against the status
//! set, for callers with the card permission (`card_rate_per_s`).

use http::{Response, StatusCode};

use super::decide::take_rate;
use super::{decide_card, decision_json, in_scope, known_venue, parse_json, ApiError, CardRequest};
use crate::app::App;
use crate::body::{json, RespBody};
use crate::callers::{Caller, Refusal};

/// Answers a card check whose body has been read, its errors in `api.md`'s order:
/// unknown venue, unknown card kind, out of scope, no card permission, then the
/// caller's rate and its card rate.
pub fn answer(app: &App, caller: &Caller, body: &[u8]) -> Result<Response<RespBody>, ApiError> {
    let request: CardRequest<'_> = parse_json(body)?;
    known_venue(app, &request.venue)?;
    if gateway_core::pseudonym::CardKind::from_name(&request.card_kind).is_none() {
        return Err(ApiError::UnknownCardKind);
    }
    in_scope(caller, &request.venue)?;
    let cards = caller.cards().ok_or_else(|| {
        caller.refused(Refusal::Card);
        ApiError::ForbiddenCard
    })?;
    take_rate(caller, 1)?;
    cards.take(&request.number).map_err(|r| {
        caller.refused(Refusal::CardRate);
        ApiError::from(r)
    })?;
    let d = decide_card(app, &request)?;
    Ok(json(StatusCode::OK, decision_json(&d, app)))
}
