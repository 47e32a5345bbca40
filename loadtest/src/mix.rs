//! The traffic mix: what share of requests carries which kind of code, and the answer the
//! gateway must give to each. Codes are minted here with an issuer key the gateway trusts
//! (the core's own `mint`), for fresh random subjects the gateway's status set does not
//! hold, so the right answer follows from the code alone (and, for `revoked`, from the
//! revocations this tool publishes before the run).

use std::str::FromStr;

use bytes::Bytes;
use gateway_core::decide::receipt::{Receipt, ReceiptKey};
use gateway_core::policy::VenueId;
use gateway_core::pseudonym::{CardKind, PseudonymKey};
use gateway_core::token::{Companion, NewClaims};
use gateway_core::{Color, Policy, Sub, Verdict};
use gateway_issuer::mint::{Issuer, SigningKey};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

use crate::error::Error;

/// Kinds of request, in the order of `--mix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Green,
    Yellow,
    Red,
    Companions,
    Expired,
    Forged,
    UnknownKey,
    Malformed,
    Revoked,
    Card,
    /// A code the shadow policy (`--shadow-policy`) judges otherwise than the one in
    /// force: the answer is still the policy in force's (`policy.md` revision 4).
    Shadow,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Green,
        Kind::Yellow,
        Kind::Red,
        Kind::Companions,
        Kind::Expired,
        Kind::Forged,
        Kind::UnknownKey,
        Kind::Malformed,
        Kind::Revoked,
        Kind::Card,
        Kind::Shadow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Green => "green",
            Kind::Yellow => "yellow",
            Kind::Red => "red",
            Kind::Companions => "companions",
            Kind::Expired => "expired",
            Kind::Forged => "forged",
            Kind::UnknownKey => "unknown_key",
            Kind::Malformed => "malformed",
            Kind::Revoked => "revoked",
            Kind::Card => "card",
            Kind::Shadow => "shadow",
        }
    }

    fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Kinds that must never be allowed: one allowed fails the run.
    pub fn must_deny(self) -> bool {
        matches!(
            self,
            Kind::Red
                | Kind::Expired
                | Kind::Forged
                | Kind::UnknownKey
                | Kind::Malformed
                | Kind::Revoked
        )
    }
}

/// Shares per kind (they need not add up to anything; each is a weight).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub weights: Vec<(Kind, u32)>,
}

impl Default for Mix {
    /// A morning rush: mostly green, a few of everything else.
    fn default() -> Self {
        "green=80,yellow=5,red=3,companions=3,expired=2,forged=2,unknown_key=1,malformed=1,revoked=1,card=2"
            .parse()
            .unwrap_or(Mix {
                weights: vec![(Kind::Green, 1)],
            })
    }
}

/// Why a `--mix` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// A part without `=`.
    #[error("{0:?}: expected kind=weight")]
    NoWeight(String),
    /// A kind that is not one of [`Kind::ALL`].
    #[error("unknown kind {0:?} (one of {names})", names = Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))]
    UnknownKind(String),
    /// A weight that is not a whole number.
    #[error("{0:?}: weight is not a whole number")]
    BadWeight(String),
    /// Every weight is zero, or there is none.
    #[error("the mix is empty")]
    Empty,
}

impl FromStr for Mix {
    type Err = MixError;

    /// `kind=weight,kind=weight,…`, e.g. `green=90,forged=10`.
    fn from_str(s: &str) -> Result<Mix, MixError> {
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, w) = part
                .split_once('=')
                .ok_or_else(|| MixError::NoWeight(part.to_owned()))?;
            let kind = Kind::from_name(k.trim())
                .ok_or_else(|| MixError::UnknownKind(k.trim().to_owned()))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| MixError::BadWeight(part.to_owned()))?;
            if w > 0 {
                weights.push((kind, w));
            }
        }
        if weights.is_empty() {
            return Err(MixError::Empty);
        }
        Ok(Mix { weights })
    }
}

/// What the gateway must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub allow: bool,
    pub reason: &'static str,
    /// For `companions`: how many companions are allowed, of how many.
    pub companions: Option<(usize, usize)>,
}

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    /// `/v1/verify?venue=…` (text/plain body) or `/v1/verify/card` (JSON body).
    pub path: String,
    pub body: Bytes,
    /// `text/plain` or `application/json`.
    pub content_type: &'static str,
    pub expect: Expect,
    /// The token id, for `revoked` codes (published as revocations before the run).
    pub cti: Option<Vec<u8>>,
    /// Whose receipt a deny carries: the holder's (16 zero bytes for a code that does
    /// not decode), or the card's pseudonym.
    pub sub: Sub,
    /// The companions' subjects, in the token's order (their receipts).
    pub companions: Vec<Sub>,
    /// The venue byte a receipt carries (`policy::venue_code`).
    pub venue_code: u8,
}

/// What minting needs.
pub struct Minter {
    pub issuer: Issuer,
    /// A key the gateway does not trust, for `unknown_key`.
    stranger: Issuer,
    pseudonyms: Option<PseudonymKey>,
    rng: rand::rngs::StdRng,
    mix: Vec<(Kind, u32)>,
    total: u32,
    /// The gateway's policy: the expected answers at each venue come from it.
    policy: Arc<Policy>,
    venues: Vec<(String, VenueId)>,
    /// (venue, color) pairs of `venues` where the shadow policy's table says otherwise
    /// than the one in force's (the `shadow` kind picks among them).
    shadowed: Vec<(String, VenueId, Color)>,
    now: u64,
    serial: u64,
}

impl Minter {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        issuer: Issuer,
        pseudonyms: Option<PseudonymKey>,
        mix: &Mix,
        policy: Arc<Policy>,
        shadow: Option<&Policy>,
        venues: &[String],
        seed: u64,
        now: u64,
    ) -> Result<Minter, Error> {
        let venues = venues
            .iter()
            .map(|v| {
                policy.venue(v).map(|id| (v.clone(), id)).ok_or_else(|| {
                    Error::flag("venue", format!("{v:?} is not in the gateway's policy"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if venues.is_empty() {
            return Err(Error::flag("venue", "none given"));
        }
        let shadowed = shadowed(&policy, shadow, &venues);
        if mix.weights.iter().any(|(k, _)| *k == Kind::Shadow) && shadowed.is_empty() {
            return Err(Error::flag(
                "mix",
                "the shadow kind needs --shadow-policy with a table that differs from the one in force at a venue of --venues",
            ));
        }
        let stranger = Issuer {
            kid: b"lt-stranger".to_vec(),
            issuer: issuer.issuer.clone(),
            key: SigningKey::ed25519(&[0x77; 32]),
        };
        let mut weights = mix.weights.clone();
        if pseudonyms.is_none() {
            weights.retain(|(k, _)| *k != Kind::Card);
            if weights.is_empty() {
                return Err(Error::Usage("card checks need the pseudonym key"));
            }
        }
        Ok(Minter {
            issuer,
            stranger,
            pseudonyms,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            total: weights.iter().map(|(_, w)| w).sum(),
            mix: weights,
            policy,
            venues,
            shadowed,
            now,
            serial: 0,
        })
    }

    fn pick(&mut self) -> Kind {
        let mut x = self.rng.gen_range(0..self.total);
        for (k, w) in &self.mix {
            if x < *w {
                return *k;
            }
            x -= w;
        }
        Kind::Green
    }

    fn claims(&mut self, color: Color) -> NewClaims {
        self.serial += 1;
        let mut sub = [0u8; 16];
        self.rng.fill(&mut sub[..]);
        let mut cti = self.serial.to_le_bytes().to_vec();
        cti.extend_from_slice(&self.rng.gen::<[u8; 4]>());
        NewClaims {
            iss: self.issuer.issuer.clone(),
            sub: Sub(sub),
            iat: self.now - 60,
            exp: self.now + 6 * 3600,
            cti,
            color,
            ver: 1,
            why: None,
            kind: None,
            with: None,
            status: None,
        }
    }

    fn code(&self, issuer: &Issuer, c: &NewClaims) -> Result<String, Error> {
        Ok(issuer.mint(c)?)
    }

    /// The next request of the mix.
    pub fn next_item(&mut self) -> Result<Item, Error> {
        let kind = self.pick();
        self.make(kind)
    }

    /// A request of the given kind, at a venue of the list.
    pub fn make(&mut self, kind: Kind) -> Result<Item, Error> {
        let (mut venue, mut vid) = self.venues[self.rng.gen_range(0..self.venues.len())].clone();
        let mut shadow_color = Color::Green;
        if kind == Kind::Shadow {
            if let Some(n) = std::num::NonZeroUsize::new(self.shadowed.len()) {
                let (v, id, color) = self.shadowed[self.rng.gen_range(0..n.get())].clone();
                (venue, vid, shadow_color) = (v, id, color);
            }
        }
        let venue_code = gateway_core::policy::venue_code(&venue);
        let judged = |policy: &Policy, color| {
            let j = policy.judge(vid, color);
            (j.verdict == Verdict::Allow, j.reason.label())
        };
        let policy = self.policy.clone();
        let by_policy = |color| {
            let (allow, reason) = judged(&policy, color);
            Expect {
                allow,
                reason,
                companions: None,
            }
        };
        let deny = |reason| Expect {
            allow: false,
            reason,
            companions: None,
        };
        let mut cti = None;
        let mut companions = Vec::new();
        let (code, expect, sub) = match kind {
            Kind::Shadow => {
                let c = self.claims(shadow_color);
                (self.code(&self.issuer, &c)?, by_policy(shadow_color), c.sub)
            }
            Kind::Green | Kind::Revoked => {
                let c = self.claims(Color::Green);
                let e = if kind == Kind::Revoked {
                    cti = Some(c.cti.clone());
                    deny("token_revoked")
                } else {
                    by_policy(Color::Green)
                };
                (self.code(&self.issuer, &c)?, e, c.sub)
            }
            Kind::Yellow => {
                let c = self.claims(Color::Yellow);
                (
                    self.code(&self.issuer, &c)?,
                    by_policy(Color::Yellow),
                    c.sub,
                )
            }
            Kind::Red => {
                let c = self.claims(Color::Red);
                (self.code(&self.issuer, &c)?, by_policy(Color::Red), c.sub)
            }
            Kind::Companions => {
                let mut c = self.claims(Color::Green);
                let n = self.rng.gen_range(1..=3usize);
                let mut with = Vec::with_capacity(n);
                let mut allowed = 0;
                for i in 0..n {
                    let mut s = [0u8; 16];
                    self.rng.fill(&mut s[..]);
                    // Companions in turn green, yellow, red: each decided on its own.
                    let color = [Color::Green, Color::Yellow, Color::Red][i % 3];
                    if judged(&policy, color).0 {
                        allowed += 1;
                    }
                    with.push(Companion {
                        sub: Sub(s),
                        color,
                        ver: 1,
                    });
                    companions.push(Sub(s));
                }
                c.with = Some(with);
                let mut e = by_policy(Color::Green);
                e.companions = Some((allowed, n));
                (self.code(&self.issuer, &c)?, e, c.sub)
            }
            Kind::Expired => {
                let mut c = self.claims(Color::Green);
                c.iat = self.now - 7200;
                c.exp = self.now - 3600;
                (self.code(&self.issuer, &c)?, deny("expired"), c.sub)
            }
            Kind::Forged => {
                let c = self.claims(Color::Green);
                let code = self.code(&self.issuer, &c)?;
                // Another claim set signed by the same key: swap its signature in, so the
                // code decodes but the signature does not match (bad_signature).
                let mut c2 = c.clone();
                c2.exp += 1;
                let other = self.code(&self.issuer, &c2)?;
                let forged =
                    splice_signature(&code, &other).ok_or(Error::Usage("forging a code failed"))?;
                (forged, deny("bad_signature"), c.sub)
            }
            Kind::UnknownKey => {
                let c = self.claims(Color::Green);
                (self.code(&self.stranger, &c)?, deny("unknown_key"), c.sub)
            }
            Kind::Malformed => {
                let c = self.claims(Color::Green);
                let code = self.code(&self.issuer, &c)?;
                // Cut in the middle: Base45 or CBOR fails.
                let cut = code.len() / 2;
                // It does not decode: its receipt is for 16 zero bytes (api.md).
                (code[..cut].to_owned(), deny("malformed"), Sub([0; 16]))
            }
            Kind::Card => {
                let number = format!("3301061980{:08}", self.rng.gen_range(0..100_000_000u32));
                let sub = match &self.pseudonyms {
                    Some(k) => k.pseudonym(CardKind::IdCard, &number),
                    None => return Err(Error::Usage("card checks need the pseudonym key")),
                };
                // Not in the status set: green (policy.md, card checks).
                let j = self.policy.judge_card(vid, Color::Green);
                let body =
                    serde_json::json!({"card_kind": "id_card", "number": number, "venue": venue});
                return Ok(Item {
                    kind,
                    path: "/v1/verify/card".into(),
                    body: Bytes::from(body.to_string()),
                    content_type: "application/json",
                    expect: Expect {
                        allow: j.verdict == Verdict::Allow,
                        reason: j.reason.label(),
                        companions: None,
                    },
                    cti: None,
                    sub,
                    companions,
                    venue_code,
                });
            }
        };
        Ok(Item {
            kind,
            path: format!("/v1/verify?venue={venue}"),
            body: Bytes::from(code),
            content_type: "text/plain",
            expect,
            cti,
            sub,
            companions,
            venue_code,
        })
    }
}

/// The (venue, color) pairs of `venues` where `shadow` says otherwise than `policy`.
fn shadowed(
    policy: &Policy,
    shadow: Option<&Policy>,
    venues: &[(String, VenueId)],
) -> Vec<(String, VenueId, Color)> {
    let Some(shadow) = shadow else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, id) in venues {
        let Some(sid) = shadow.venue(name) else {
            continue;
        };
        for color in [Color::Green, Color::Yellow, Color::Red] {
            if policy.outcome(*id, color) != shadow.outcome(sid, color) {
                out.push((name.clone(), *id, color));
            }
        }
    }
    out
}

/// Puts the COSE signature of `donor` into `code` (both minted by the same key over
/// claims of the same length): the result parses and fails only its signature.
fn splice_signature(code: &str, donor: &str) -> Option<String> {
    use gateway_core::token;
    let a = token::decode_text(code).ok()?;
    let b = token::decode_text(donor).ok()?;
    if a.len() != b.len() || a.len() < 64 {
        return None;
    }
    let mut forged = a.clone();
    let n = forged.len();
    forged[n - 64..].copy_from_slice(&b[n - 64..]);
    Some(token::encode_text(&forged))
}

/// Checks an answer body against what was expected; `Err` names what differed. With
/// the receipt key (the loadtest has the feed key and the gateway uses one), every deny
/// must carry a receipt genuine for its subject at the item's venue, and no allow one.
pub fn check(
    item: &Item,
    body: &[u8],
    receipts: Option<&ReceiptKey>,
) -> Result<bool, &'static str> {
    let expect = &item.expect;
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| "not_json")?;
    let allowed = match v["decision"].as_str() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err("no_decision"),
    };
    if allowed != expect.allow {
        return Err(if allowed {
            "allowed_not_denied"
        } else {
            "denied_not_allowed"
        });
    }
    if v["reason"].as_str() != Some(expect.reason) {
        return Err("wrong_reason");
    }
    if let Some((ok, n)) = expect.companions {
        let list = v["companions"].as_array().ok_or("no_companions")?;
        let got = list.iter().filter(|c| c["decision"] == "allow").count();
        if list.len() != n || got != ok {
            return Err("wrong_companions");
        }
    }
    if let Some(key) = receipts {
        receipt_ok(key, &v, &item.sub, item.venue_code)?;
        if let Some(list) = v["companions"].as_array() {
            for (c, sub) in list.iter().zip(&item.companions) {
                receipt_ok(key, c, sub, item.venue_code)?;
            }
        }
    }
    Ok(allowed)
}

/// A judgement object's receipt: present and genuine for `sub` at `venue` on a deny,
/// absent on an allow.
fn receipt_ok(
    key: &ReceiptKey,
    j: &serde_json::Value,
    sub: &Sub,
    venue: u8,
) -> Result<(), &'static str> {
    match (j["decision"].as_str(), j["receipt"].as_str()) {
        (Some("deny"), None) => Err("deny_without_receipt"),
        (Some("deny"), Some(text)) => {
            let b = Receipt::decode(text).ok_or("receipt_not_genuine")?;
            if b[4] == venue && key.check(&b, sub) {
                Ok(())
            } else {
                Err("receipt_not_genuine")
            }
        }
        (_, Some(_)) => Err("receipt_on_allow"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_is_parsed_and_every_refusal_names_what_is_wrong() {
        let m: Mix = "green=90, forged=10,red=0".parse().unwrap_or_default();
        assert_eq!(m.weights, vec![(Kind::Green, 90), (Kind::Forged, 10)]);
        let err = |s: &str| s.parse::<Mix>().err().map(|e| e.to_string());
        assert_eq!(err("green"), Some("\"green\": expected kind=weight".into()));
        assert_eq!(
            err("green=x"),
            Some("\"green=x\": weight is not a whole number".into())
        );
        assert_eq!(err("red=0"), Some("the mix is empty".into()));
        let unknown = err("blue=1").unwrap_or_default();
        assert!(
            unknown.starts_with("unknown kind \"blue\" (one of green,"),
            "{unknown}"
        );
    }
}
