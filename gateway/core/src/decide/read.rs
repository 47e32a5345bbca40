//! The read path, in the order of `token.md`, in three steps that every endpoint shares:
//!
//! 1. [`Verifier::begin`]: the venue, the code decoded once (Base45, CBOR, COSE, claims),
//!    the key found (steps 2 and 3) and the signature cache asked. A code that fails
//!    before its signature, or whose signature is cached, is decided there and then
//!    ([`Begun::Decided`]); the others wait for their signature ([`Pending`]: the
//!    decoded bytes, the venue and the cache key, owned, so another thread can settle
//!    them).
//! 2. [`Verifier::settle`]: the pending signatures checked, Ed25519 ones that miss the
//!    cache together (batch verification, ≈ 0.55 of a single check each; a failed batch
//!    is bisected, so a forgery fails only itself and is never verified twice), the
//!    others one by one; the good ones recorded in the cache.
//! 3. Each settled code finished: steps 5 to 8 (issuer, validity window, time,
//!    revocation), then the status set (9) and the policy (10).
//!
//! [`Verifier::decide`] and [`Verifier::decide_many`] are the three steps in one call.

use ed25519_dalek::VerifyingKey;

use super::{receipt, Authentic, CompanionJudgements, Decision, Limits, RequestError, Verifier};
use crate::decide::reason::Reason;
use crate::policy::rollout::Rules;
use crate::policy::{Judgement, Policy, VenueId, Verdict};
use crate::pseudonym::CardKind;
use crate::sigcache::{Digest, SigCache};
use crate::status::{Color, Sub};
use crate::token::{self, Claims, Token};
use crate::trust::signature::{self, SignatureValid};
use crate::trust::{PublicKey, TrustList, TrustedKey};

/// A code decoded and checked up to its signature, waiting for it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The COSE_Sign1 bytes (Base45 already undone).
    bytes: Vec<u8>,
    venue: String,
    /// The signature cache's key for it.
    digest: Digest,
}

/// What [`Verifier::begin`] made of a code.
#[derive(Debug)]
pub enum Begun {
    /// Decided without a signature check: it failed before one, or its signature is
    /// cached.
    Decided(Decision),
    /// Its signature must be checked: [`Verifier::settle`].
    Pending(Pending),
}

impl Verifier {
    /// Step one for a scanned code at `venue` at `now` (seconds since the epoch).
    pub fn begin(&self, code: &str, venue: &str, now: u64) -> Result<Begun, RequestError> {
        let rules = self.rules.load();
        let policy = rules.in_force().ok_or(RequestError::NoPolicy)?;
        let venue_id = policy.venue(venue).ok_or(RequestError::UnknownVenue)?;
        let failed = |r, claims| {
            let d = self.stamped(Decision::failed(r, policy.version()), claims, venue, now);
            Ok(Begun::Decided(d))
        };
        let Ok(bytes) = token::decode_text(code) else {
            return failed(Reason::Malformed, None);
        };
        let Ok(token) = Token::parse(&bytes) else {
            return failed(Reason::Malformed, None);
        };
        let trust = self.trust.load();
        let key = match self.key_for(&token, &trust) {
            Ok(k) => k,
            Err(r) => return failed(r, Some(&token.claims)),
        };
        let digest = SigCache::key(&token.cose);
        if !self
            .cache
            .as_ref()
            .is_some_and(|c| c.hit(&digest, key.serial))
        {
            return Ok(Begun::Pending(Pending::new(bytes, venue, digest)));
        }
        let decision = match self.after_signature(SignatureValid::new(&token, key), now) {
            Ok(auth) => self.judge(&auth, &rules, policy, venue_id),
            Err(r) => Decision::failed(r, policy.version()),
        };
        Ok(Begun::Decided(self.stamped(
            decision,
            Some(&token.claims),
            venue,
            now,
        )))
    }

    /// Steps two and three for codes begun (those decided already come out as they
    /// are): the pending signatures checked (Ed25519 ones together), then each code
    /// finished. The answers are in the order of `begun`.
    pub fn settle(
        &self,
        begun: Vec<Result<Begun, RequestError>>,
        now: u64,
    ) -> Vec<Result<Decision, RequestError>> {
        let rules = self.rules.load();
        let trust = self.trust.load();
        let tokens: Vec<Option<Token<'_>>> = begun
            .iter()
            .map(|b| match b {
                Ok(Begun::Pending(p)) => Token::parse(&p.bytes).ok(),
                _ => None,
            })
            .collect();
        // Steps 2 and 3 once per code (the trust list may have changed since it began).
        let keys: Vec<Option<Result<&TrustedKey, Reason>>> = tokens
            .iter()
            .map(|t| t.as_ref().map(|t| self.key_for(t, &trust)))
            .collect();
        let verdicts = self.verify_together(&begun, &tokens, &keys);
        begun
            .iter()
            .zip(tokens.iter().zip(keys))
            .zip(verdicts)
            .map(|((b, (token, key)), verdict)| match b {
                Ok(Begun::Decided(d)) => Ok(*d),
                Err(e) => Err(*e),
                Ok(Begun::Pending(p)) => {
                    let checked = token.as_ref().zip(key);
                    self.finish(&rules, p, checked, verdict, now)
                }
            })
            .collect()
    }

    /// One pending code settled alone.
    pub fn settle_one(&self, p: Pending, now: u64) -> Result<Decision, RequestError> {
        let rules = self.rules.load();
        let trust = self.trust.load();
        let token = Token::parse(&p.bytes).ok();
        let checked = token.as_ref().map(|t| (t, self.key_for(t, &trust)));
        self.finish(&rules, &p, checked, None, now)
    }

    /// Decides one scanned code: [`begin`](Self::begin), then
    /// [`settle_one`](Self::settle_one) if it waits for its signature.
    pub fn decide(&self, code: &str, venue: &str, now: u64) -> Result<Decision, RequestError> {
        match self.begin(code, venue, now)? {
            Begun::Decided(d) => Ok(d),
            Begun::Pending(p) => self.settle_one(p, now),
        }
    }

    /// Decides many scans at once: the same answers as [`decide`](Self::decide) for each,
    /// with every pending signature settled together.
    pub fn decide_many(
        &self,
        items: &[(&str, &str)],
        now: u64,
    ) -> Vec<Result<Decision, RequestError>> {
        let begun = items
            .iter()
            .map(|(code, venue)| self.begin(code, venue, now))
            .collect();
        self.settle(begun, now)
    }

    /// Steps 2 to 8 of `token.md` for a parsed token, its signature checked now unless
    /// the cache holds it.
    pub fn authenticate<'t>(
        &self,
        token: &'t Token<'t>,
        trust: &'t TrustList,
        now: u64,
    ) -> Result<Authentic<'t>, Reason> {
        let key = self.key_for(token, trust)?;
        let digest = SigCache::key(&token.cose);
        let sig = match &self.cache {
            Some(c) if c.hit(&digest, key.serial) => SignatureValid::new(token, key),
            _ => self.verify_now(token, key, digest)?,
        };
        self.after_signature(sig, now)
    }

    /// Steps 2 and 3: the key, not revoked, of the token's algorithm.
    fn key_for<'t>(
        &self,
        token: &Token<'_>,
        trust: &'t TrustList,
    ) -> Result<&'t TrustedKey, Reason> {
        let key = trust.get(token.cose.kid).ok_or(Reason::UnknownKey)?;
        if trust.is_revoked(&key.kid) {
            return Err(Reason::KeyRevoked);
        }
        if key.alg != token.cose.alg {
            return Err(Reason::AlgMismatch);
        }
        Ok(key)
    }

    /// A pending code finished: the venue in the policy now in force, its token with the
    /// result of steps 2 and 3 (`None`: it no longer parses), its signature's verdict
    /// (checked now when no batch settled it), steps 5 to 8, then 9 and 10.
    fn finish<'t>(
        &self,
        rules: &Rules,
        p: &Pending,
        checked: Option<(&'t Token<'t>, Result<&'t TrustedKey, Reason>)>,
        verdict: Option<bool>,
        now: u64,
    ) -> Result<Decision, RequestError> {
        let policy = rules.in_force().ok_or(RequestError::NoPolicy)?;
        let venue = policy.venue(&p.venue).ok_or(RequestError::UnknownVenue)?;
        let failed = |r| Decision::failed(r, policy.version());
        let Some((token, key)) = checked else {
            return Ok(self.stamped(failed(Reason::Malformed), None, &p.venue, now));
        };
        let authentic = key
            .and_then(|key| self.settled_signature(token, key, verdict, p.digest))
            .and_then(|sig| self.after_signature(sig, now));
        let d = match authentic {
            Ok(auth) => self.judge(&auth, rules, policy, venue),
            Err(r) => failed(r),
        };
        Ok(self.stamped(d, Some(&token.claims), &p.venue, now))
    }

    /// Step 4 for a pending code (which missed the cache when it began): the batch's
    /// verdict when one settled it, else a check now.
    fn settled_signature<'t>(
        &self,
        token: &'t Token<'t>,
        key: &'t TrustedKey,
        verdict: Option<bool>,
        digest: Digest,
    ) -> Result<SignatureValid<'t>, Reason> {
        match verdict {
            Some(true) => Ok(SignatureValid::new(token, key)),
            Some(false) => Err(Reason::BadSignature),
            None => self.verify_now(token, key, digest),
        }
    }

    /// Step 4 checked now; a good signature is recorded in the cache.
    fn verify_now<'t>(
        &self,
        token: &'t Token<'t>,
        key: &'t TrustedKey,
        digest: Digest,
    ) -> Result<SignatureValid<'t>, Reason> {
        let mut scratch = Vec::new();
        let valid =
            signature::verify(token, key, &mut scratch).map_err(|_| Reason::BadSignature)?;
        if let Some(cache) = &self.cache {
            cache.record(digest, key.serial);
        }
        Ok(valid)
    }

    /// Steps 5 to 8: issuer, the key's validity window, time, revocation.
    fn after_signature<'t>(
        &self,
        sig: SignatureValid<'t>,
        now: u64,
    ) -> Result<Authentic<'t>, Reason> {
        let (c, key) = (&sig.token().claims, sig.key());
        if c.iss != key.issuer {
            return Err(Reason::IssuerMismatch);
        }
        let iat = i128::from(c.iat);
        if iat < i128::from(key.not_before) || iat > i128::from(key.not_after) {
            return Err(Reason::KeyNotValidAtIssue);
        }
        let Limits { skew, max_validity } = self.limits;
        if c.iat > now.saturating_add(skew) {
            return Err(Reason::NotYetValid);
        }
        if now >= c.exp.saturating_add(skew) {
            return Err(Reason::Expired);
        }
        if c.exp - c.iat > max_validity {
            return Err(Reason::ValidityTooLong);
        }
        if self.revoked.is_revoked(c.cti) {
            return Err(Reason::TokenRevoked);
        }
        Ok(Authentic { sig })
    }

    /// The verdicts of the pending Ed25519 signatures (each missed the cache when it
    /// began), checked in one batch when there are two or more (`None`: not settled
    /// here).
    fn verify_together(
        &self,
        begun: &[Result<Begun, RequestError>],
        tokens: &[Option<Token<'_>>],
        keys: &[Option<Result<&TrustedKey, Reason>>],
    ) -> Vec<Option<bool>> {
        let mut verdicts = vec![None; begun.len()];
        let Some(cache) = &self.cache else {
            return verdicts;
        };
        let mut batch: Vec<(usize, Vec<u8>, VerifyingKey, u64, Digest)> = Vec::new();
        for (i, ((b, t), key)) in begun.iter().zip(tokens).zip(keys).enumerate() {
            let (Ok(Begun::Pending(p)), Some(t), Some(Ok(key))) = (b, t, key) else {
                continue;
            };
            let PublicKey::Ed25519(vk) = &key.public_key else {
                continue;
            };
            batch.push((i, t.cose.signed_bytes(), *vk, key.serial, p.digest));
        }
        if batch.len() < 2 {
            return verdicts;
        }
        let items: Vec<(&[u8], &[u8; 64], &VerifyingKey)> = batch
            .iter()
            .filter_map(|(i, m, k, _, _)| {
                tokens[*i]
                    .as_ref()
                    .map(|t| (m.as_slice(), t.cose.signature, k))
            })
            .collect();
        for ((i, _, _, serial, digest), ok) in
            batch.iter().zip(signature::verify_ed25519_batch(&items))
        {
            verdicts[*i] = Some(ok);
            if ok {
                cache.record(*digest, *serial);
            }
        }
        verdicts
    }

    /// Steps 9 and 10 for the holder and each companion, by `policy` (the one in force
    /// in `rules`), and by the shadow too when one is tried.
    fn judge(
        &self,
        auth: &Authentic<'_>,
        rules: &Rules,
        policy: &Policy,
        venue: VenueId,
    ) -> Decision {
        let c = auth.claims();
        let holder = self.judge_subject(rules, policy, venue, &c.sub, c.color, c.ver);
        let companions = c.with.map(|with| {
            let mut out = CompanionJudgements::default();
            for m in with.as_slice() {
                out.items[usize::from(out.len)] =
                    self.judge_subject(rules, policy, venue, &m.sub, m.color, m.ver);
                out.len += 1;
            }
            out
        });
        Decision {
            holder,
            companions,
            policy_version: policy.version(),
        }
    }

    /// Step 9 (status) and 10 (policy) for one subject whose token says `color` at `ver`.
    fn judge_subject(
        &self,
        rules: &Rules,
        policy: &Policy,
        venue: VenueId,
        sub: &Sub,
        color: Color,
        ver: u64,
    ) -> Judgement {
        let effective = match self.status.get(sub) {
            Some(s) if s.ver > ver => s.color,
            _ => color,
        };
        let mut j = judge_color(policy, venue, color, effective);
        if rules.has_shadow() {
            j.shadow = rules.shadow_diff(venue, effective);
        }
        j
    }

    /// A card check (`policy.md`): the document's pseudonym looked up in the status set,
    /// green when absent.
    pub fn decide_card(
        &self,
        kind: CardKind,
        number: &str,
        venue_name: &str,
        now: u64,
    ) -> Result<Decision, RequestError> {
        let rules = self.rules.load();
        let policy = rules.in_force().ok_or(RequestError::NoPolicy)?;
        let venue = policy.venue(venue_name).ok_or(RequestError::UnknownVenue)?;
        let keys = self
            .pseudonyms
            .as_ref()
            .ok_or(RequestError::NoPseudonymKey)?;
        let sub = keys.pseudonym(kind, number);
        let color = self.status.get(&sub).map_or(Color::Green, |s| s.color);
        let mut holder = policy.judge_card(venue, color);
        if rules.has_shadow() {
            holder.shadow = rules.shadow_diff(venue, color);
        }
        if let (Some(k), Verdict::Deny) = (&self.receipts, holder.verdict) {
            let b = k.make(
                now,
                crate::policy::venue_code(venue_name),
                holder.reason,
                &sub,
            );
            holder.receipt = Some(receipt::Receipt::encode(&b));
        }
        Ok(Decision {
            holder,
            companions: None,
            policy_version: policy.version(),
        })
    }

    /// The decision with the receipts of its denies (`api.md` revision 4), when there is
    /// a receipt key: the holder's for its `sub` (16 zero bytes for a code that does not
    /// decode, `claims` then `None`), each denied companion's for its own.
    fn stamped(
        &self,
        mut d: Decision,
        claims: Option<&Claims<'_>>,
        venue: &str,
        now: u64,
    ) -> Decision {
        let Some(k) = &self.receipts else {
            return d;
        };
        let venue = crate::policy::venue_code(venue);
        let stamp = |j: &mut Judgement, sub: &Sub| {
            if j.verdict == Verdict::Deny {
                let b = k.make(now, venue, j.reason, sub);
                j.receipt = Some(receipt::Receipt::encode(&b));
            }
        };
        let holder = claims.map_or(Sub([0; 16]), |c| c.sub);
        stamp(&mut d.holder, &holder);
        if let (Some(js), Some(with)) = (d.companions.as_mut(), claims.and_then(|c| c.with)) {
            let n = usize::from(js.len);
            for (j, m) in js.items[..n].iter_mut().zip(with.as_slice()) {
                stamp(j, &m.sub);
            }
        }
        d
    }
}

/// Step 10 for a subject whose token says `color` and whose effective color (step 9)
/// is `effective`: the table's judgement, `status_changed` when the change of color
/// turned an allow into a deny or back. Shared by the online and offline decisions.
pub(crate) fn judge_color(
    policy: &Policy,
    venue: VenueId,
    color: Color,
    effective: Color,
) -> Judgement {
    let mut j = policy.judge(venue, effective);
    if effective != color && policy.judge(venue, color).verdict != j.verdict {
        j.reason = Reason::StatusChanged;
    }
    j
}

impl Pending {
    fn new(bytes: Vec<u8>, venue: &str, digest: Digest) -> Self {
        Pending {
            bytes,
            venue: venue.to_owned(),
            digest,
        }
    }
}
