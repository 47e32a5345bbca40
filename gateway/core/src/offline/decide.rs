//! The offline decision (`offline.md`, "The validator", steps 1 to 10): the online
//! pipeline's own steps (decode, [`Verifier::authenticate`] for 2 to 7, the policy's
//! judgement with the same `status_changed` rule), with the held status lists in place
//! of the status set: step 8 asks the lists' revocations, step 9 takes the holder's
//! color from the list its `status` claim names when the list is newer than the token.
//! Companions keep their token colors.

use crate::decide::read::judge_color;
use crate::decide::{CompanionJudgements, Decision, RequestError, Verifier};
use crate::offline::bits::color_of;
use crate::policy::Judgement;
use crate::status::Cti;
use crate::token::{self, Token};
use crate::Reason;

pub use crate::offline::held::Lists;

/// An offline answer: the decision and how step 9 went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineDecision {
    /// The decision, shaped as online.
    pub decision: Decision,
    /// Whether step 9 took the holder's color from a list.
    pub status_checked: bool,
    /// The time T of the list that decided the color, when one did.
    pub list_time: Option<u64>,
}

impl Verifier {
    /// Decides `code` at `venue` at `now` with no network, from `lists` and this
    /// verifier's trust list and policy (as a validator's bundle set them).
    pub fn decide_offline(
        &self,
        code: &str,
        venue: &str,
        now: u64,
        lists: &impl Lists,
    ) -> Result<OfflineDecision, RequestError> {
        let rules = self.rules();
        let policy = rules.in_force().ok_or(RequestError::NoPolicy)?;
        let venue_id = policy.venue(venue).ok_or(RequestError::UnknownVenue)?;
        let failed = |reason| OfflineDecision {
            decision: Decision {
                holder: Judgement::failed(reason),
                companions: None,
                policy_version: policy.version(),
            },
            status_checked: false,
            list_time: None,
        };
        let Ok(bytes) = token::decode_text(code) else {
            return Ok(failed(Reason::Malformed));
        };
        let Ok(token) = Token::parse(&bytes) else {
            return Ok(failed(Reason::Malformed));
        };
        let trust = self.trust();
        let auth = match self.authenticate(&token, &trust, now) {
            Ok(a) => a,
            Err(r) => return Ok(failed(r)),
        };
        let c = auth.claims();
        if Cti::new(c.cti).is_some_and(|cti| lists.revoked(&cti, now)) {
            return Ok(failed(Reason::TokenRevoked));
        }
        // Step 9: the list the claim names, if held and of the token's issuer.
        let mut effective = c.color;
        let mut list_time = None;
        if let Some(st) = &c.status {
            if let Some(held) = lists.list(st.uri).filter(|h| h.list().iss == c.iss) {
                let Some(value) = held.value(st.idx) else {
                    return Ok(failed(Reason::Malformed));
                };
                if held.time() > c.iat {
                    effective = color_of(value);
                    list_time = Some(held.time());
                }
            }
        }
        let holder = judge_color(policy, venue_id, c.color, effective);
        let companions = c.with.map(|with| {
            let mut out = CompanionJudgements::default();
            for m in with.as_slice() {
                out.push(judge_color(policy, venue_id, m.color, m.color));
            }
            out
        });
        Ok(OfflineDecision {
            decision: Decision {
                holder,
                companions,
                policy_version: policy.version(),
            },
            status_checked: list_time.is_some(),
            list_time,
        })
    }
}
