//! The one entry point: a scanned code, a venue and the time in; a decision out.
//!
//! The checks run in the order of `token.md` and the first failure decides. Each stage
//! hands the next a value it could not have got otherwise: [`Token`] (decoded),
//! [`SignatureValid`] (verified), [`Authentic`] (steps 2 to 8 passed); the status and
//! policy steps take `&Authentic`. This module holds the state those steps read, and
//! the feed writes into it through [`Verifier::apply`].

pub(crate) mod reason;

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::decide::reason::Reason;
use crate::feed_event::Event;
use crate::policy::{Judgement, Policy, PolicyError, VenueId, Verdict};
use crate::pseudonym::{CardKind, PseudonymKey};
use crate::sigcache::{Digest, SigCache};
use crate::status::{Color, RevokedTokens, StatusApplied, StatusSet, Sub};
use crate::token::{self, Claims, Token, MAX_COMPANIONS};
use crate::trust::signature::{self, SignatureValid};
use crate::trust::{PublicKey, TrustList, TrustedKey};

/// Time limits of `token.md` step 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Clock skew tolerated both ways, seconds. Default 30.
    pub skew: u64,
    /// Longest `exp - iat`, seconds. Default 86,400.
    pub max_validity: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            skew: 30,
            max_validity: 86_400,
        }
    }
}

/// How to build a [`Verifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
    /// Tokens the signature cache holds; 0 turns it off. Default 1,000,000 (about
    /// 100 MB, see `benches/README.md`).
    pub sig_cache_capacity: usize,
    /// Subjects to pre-size the status set for.
    pub expected_subjects: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            sig_cache_capacity: 1_000_000,
            expected_subjects: 0,
        }
    }
}

/// A request the core cannot decide: the caller's mistake or a setup gap, never the
/// code's content (a bad code is a deny, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The policy in force has no such venue category (HTTP 400 `unknown_venue`).
    #[error("unknown venue category")]
    UnknownVenue,
    /// No policy is loaded yet.
    #[error("no policy loaded")]
    NoPolicy,
    /// Card checks need the pseudonym key, which this gateway was not given.
    #[error("card checks are not configured (no pseudonym key)")]
    NoPseudonymKey,
}

/// Decisions for a token's companions, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompanionJudgements {
    items: [Judgement; MAX_COMPANIONS],
    len: u8,
}

impl CompanionJudgements {
    pub fn as_slice(&self) -> &[Judgement] {
        &self.items[..usize::from(self.len)]
    }
}

/// The answer to one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub holder: Judgement,
    /// Present only when the token passed steps 1 to 8 and carries `with`.
    pub companions: Option<CompanionJudgements>,
    pub policy_version: u64,
}

impl Decision {
    fn failed(reason: Reason, policy_version: u64) -> Self {
        Decision {
            holder: Judgement::failed(reason),
            companions: None,
            policy_version,
        }
    }
}

/// Proof that a token passed steps 2 to 8: only [`Verifier::authenticate`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Authentic<'t> {
    sig: SignatureValid<'t>,
}

impl<'t> Authentic<'t> {
    pub fn claims(&self) -> &'t Claims<'t> {
        &self.sig.token().claims
    }

    pub fn key(&self) -> &'t TrustedKey {
        self.sig.key()
    }
}

/// What applying a feed event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Status(StatusApplied),
    TokenRevoked,
    KeyAdded,
    /// A `key` add for a kid already held with another public key, not applied: the
    /// held key's document has a `seq` and this one's is not above it (a replayed
    /// older document would otherwise roll a re-keyed kid back).
    KeyKept,
    KeyRevoked,
    Policy {
        version: u64,
    },
    Heartbeat,
}

/// The verification state: trust list, policy, status set, revocations and the
/// signature cache. Shared by every request; written only by the feed.
pub struct Verifier {
    limits: Limits,
    trust: ArcSwap<TrustList>,
    policy: ArcSwapOption<Policy>,
    status: StatusSet,
    revoked: RevokedTokens,
    cache: Option<SigCache>,
    pseudonyms: Option<PseudonymKey>,
    /// The root-signed key documents applied from the feed, in order (each once), so a
    /// snapshot can carry them and a restore verify them again.
    key_docs: parking_lot::Mutex<Vec<String>>,
}

/// Why steps 2 to 8 stopped: a reason, or (when asked not to verify) a signature that is
/// not in the cache.
enum Fail {
    Reason(Reason),
    NotCached,
}

impl From<Reason> for Fail {
    fn from(r: Reason) -> Self {
        Fail::Reason(r)
    }
}

/// How step 4 is settled for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigMode {
    /// From the cache, else by verifying now.
    Verify,
    /// From the cache only; a miss is [`Fail::NotCached`].
    CacheOnly,
    /// Already settled by a batch verification of this very token: its verdict.
    Settled(bool),
}

impl Verifier {
    pub fn new(
        settings: Settings,
        trust: TrustList,
        policy: Option<Policy>,
        pseudonyms: Option<PseudonymKey>,
    ) -> Self {
        Verifier {
            limits: settings.limits,
            trust: ArcSwap::from_pointee(trust),
            policy: ArcSwapOption::new(policy.map(Arc::new)),
            status: StatusSet::with_capacity(settings.expected_subjects),
            revoked: RevokedTokens::default(),
            cache: (settings.sig_cache_capacity > 0)
                .then(|| SigCache::new(settings.sig_cache_capacity)),
            pseudonyms,
            key_docs: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// The root-signed key documents applied so far (see [`Verifier::apply`]).
    pub fn key_docs(&self) -> Vec<String> {
        self.key_docs.lock().clone()
    }

    fn keep_key_doc(&self, signed: String) {
        let mut docs = self.key_docs.lock();
        if !docs.contains(&signed) {
            docs.push(signed);
        }
    }

    /// Decides a scanned code at `venue` at `now` (seconds since the epoch).
    pub fn decide(&self, code: &str, venue: &str, now: u64) -> Result<Decision, RequestError> {
        self.decide_inner(code, venue, now, SigMode::Verify)
            .map(|d| d.unwrap_or_else(|| Decision::failed(Reason::BadSignature, 0)))
    }

    /// Like [`decide`](Self::decide), but never verifies a signature: `Ok(None)` when the
    /// code would need one (its signature is not in the cache). A server answers warm
    /// codes this way at once and hands the others to its verification pool.
    pub fn decide_if_cached(
        &self,
        code: &str,
        venue: &str,
        now: u64,
    ) -> Result<Option<Decision>, RequestError> {
        self.decide_inner(code, venue, now, SigMode::CacheOnly)
    }

    fn decide_inner(
        &self,
        code: &str,
        venue: &str,
        now: u64,
        mode: SigMode,
    ) -> Result<Option<Decision>, RequestError> {
        let policy = self.policy.load();
        let policy = policy.as_deref().ok_or(RequestError::NoPolicy)?;
        let venue = policy.venue(venue).ok_or(RequestError::UnknownVenue)?;
        let mut bytes = Vec::new();
        let token =
            match token::decode_text_into(code, &mut bytes).and_then(|()| Token::parse(&bytes)) {
                Ok(t) => t,
                Err(_) => return Ok(Some(Decision::failed(Reason::Malformed, policy.version()))),
            };
        let trust = self.trust.load();
        Ok(self.decide_token(&token, &trust, policy, venue, now, mode))
    }

    fn decide_token(
        &self,
        token: &Token<'_>,
        trust: &TrustList,
        policy: &Policy,
        venue: VenueId,
        now: u64,
        mode: SigMode,
    ) -> Option<Decision> {
        match self.authenticate_inner(token, trust, now, mode) {
            Ok(auth) => Some(self.judge(&auth, policy, venue)),
            Err(Fail::Reason(reason)) => Some(Decision::failed(reason, policy.version())),
            Err(Fail::NotCached) => None,
        }
    }

    /// Decides many scans at once. Same answers as [`decide`](Self::decide) for each
    /// item; the difference is cost. Each code is decoded once. Ed25519 signatures that
    /// miss the signature cache are checked together with batch verification (≈ 0.55 of
    /// a single verification each, `benches/README.md`); a failed batch is bisected
    /// ([`signature::verify_ed25519_batch`]), so a forgery fails only itself and is never
    /// verified a second time; each verdict is used as it is and the good ones recorded
    /// in the cache. There is no global state: a batch that failed changes nothing for
    /// the next one. Without a signature cache this is a loop over `decide`.
    pub fn decide_many(
        &self,
        items: &[(&str, &str)],
        now: u64,
    ) -> Vec<Result<Decision, RequestError>> {
        if items.len() < 2 || self.cache.is_none() {
            return items
                .iter()
                .map(|(code, venue)| self.decide(code, venue, now))
                .collect();
        }
        let policy = self.policy.load();
        let Some(policy) = policy.as_deref() else {
            return vec![Err(RequestError::NoPolicy); items.len()];
        };
        let trust = self.trust.load();
        let buffers: Vec<Option<Vec<u8>>> = items
            .iter()
            .map(|(code, _)| token::decode_text(code).ok())
            .collect();
        let tokens: Vec<Option<Token<'_>>> = buffers
            .iter()
            .map(|b| b.as_deref().and_then(|b| Token::parse(b).ok()))
            .collect();
        // Each EdDSA token that passes steps 2 and 3 and misses the cache: its index,
        // signed bytes, key and cache key.
        let mut pending: Vec<(usize, Vec<u8>, VerifyingKey, Digest, u64)> = Vec::new();
        let cache = self.cache.as_ref();
        for (i, t) in tokens.iter().enumerate() {
            let Some(t) = t else { continue };
            let Some(key) = trust.get(t.cose.kid) else {
                continue;
            };
            let PublicKey::Ed25519(vk) = &key.public_key else {
                continue;
            };
            if trust.is_revoked(&key.kid) || key.alg != t.cose.alg {
                continue;
            }
            let digest = SigCache::key(&t.cose);
            if cache.is_some_and(|c| c.hit(&digest, key.serial)) {
                continue;
            }
            pending.push((i, t.cose.signed_bytes(), *vk, digest, key.serial));
        }
        let mut settled: Vec<Option<bool>> = vec![None; items.len()];
        if pending.len() >= 2 {
            let batch: Vec<(&[u8], &[u8; 64], &VerifyingKey)> = pending
                .iter()
                .filter_map(|(i, m, k, _, _)| {
                    tokens[*i]
                        .as_ref()
                        .map(|t| (m.as_slice(), t.cose.signature, k))
                })
                .collect();
            let verdicts = signature::verify_ed25519_batch(&batch);
            for ((i, _, _, digest, serial), ok) in pending.into_iter().zip(verdicts) {
                settled[i] = Some(ok);
                if ok {
                    if let Some(c) = cache {
                        c.record(digest, serial);
                    }
                }
            }
        }
        items
            .iter()
            .zip(&tokens)
            .zip(settled)
            .map(|(((_, venue), token), settled)| {
                let venue = policy.venue(venue).ok_or(RequestError::UnknownVenue)?;
                let Some(token) = token else {
                    return Ok(Decision::failed(Reason::Malformed, policy.version()));
                };
                let mode = settled.map_or(SigMode::Verify, SigMode::Settled);
                Ok(self
                    .decide_token(token, &trust, policy, venue, now, mode)
                    .unwrap_or_else(|| Decision::failed(Reason::BadSignature, policy.version())))
            })
            .collect()
    }

    /// Steps 2 to 8 of `token.md`.
    pub fn authenticate<'t>(
        &self,
        token: &'t Token<'t>,
        trust: &'t TrustList,
        now: u64,
    ) -> Result<Authentic<'t>, Reason> {
        self.authenticate_inner(token, trust, now, SigMode::Verify)
            .map_err(|f| match f {
                Fail::Reason(r) => r,
                Fail::NotCached => Reason::BadSignature,
            })
    }

    fn authenticate_inner<'t>(
        &self,
        token: &'t Token<'t>,
        trust: &'t TrustList,
        now: u64,
        mode: SigMode,
    ) -> Result<Authentic<'t>, Fail> {
        let key = trust
            .get(token.cose.kid)
            .ok_or(Fail::Reason(Reason::UnknownKey))?;
        if trust.is_revoked(&key.kid) {
            return Err(Reason::KeyRevoked.into());
        }
        if key.alg != token.cose.alg {
            return Err(Reason::AlgMismatch.into());
        }
        let sig = self.check_signature(token, key, mode)?;
        let c = &token.claims;
        if c.iss != key.issuer {
            return Err(Reason::IssuerMismatch.into());
        }
        let iat = i128::from(c.iat);
        if iat < i128::from(key.not_before) || iat > i128::from(key.not_after) {
            return Err(Reason::KeyNotValidAtIssue.into());
        }
        let Limits { skew, max_validity } = self.limits;
        if c.iat > now.saturating_add(skew) {
            return Err(Reason::NotYetValid.into());
        }
        if now >= c.exp.saturating_add(skew) {
            return Err(Reason::Expired.into());
        }
        if c.exp - c.iat > max_validity {
            return Err(Reason::ValidityTooLong.into());
        }
        if self.revoked.is_revoked(c.cti) {
            return Err(Reason::TokenRevoked.into());
        }
        Ok(Authentic { sig })
    }

    /// Step 4: settled by a batch already, or through the cache when there is one, or by
    /// verifying now (unless `mode` forbids it).
    fn check_signature<'t>(
        &self,
        token: &'t Token<'t>,
        key: &'t TrustedKey,
        mode: SigMode,
    ) -> Result<SignatureValid<'t>, Fail> {
        let bad = |_| Fail::Reason(Reason::BadSignature);
        let mut scratch = Vec::new();
        match mode {
            SigMode::Settled(true) => return Ok(SignatureValid::new(token, key)),
            SigMode::Settled(false) => return Err(Reason::BadSignature.into()),
            SigMode::Verify | SigMode::CacheOnly => {}
        }
        let Some(cache) = &self.cache else {
            if mode == SigMode::CacheOnly {
                return Err(Fail::NotCached);
            }
            return signature::verify(token, key, &mut scratch).map_err(bad);
        };
        let digest = SigCache::key(&token.cose);
        if cache.hit(&digest, key.serial) {
            return Ok(SignatureValid::new(token, key));
        }
        if mode == SigMode::CacheOnly {
            return Err(Fail::NotCached);
        }
        let valid = signature::verify(token, key, &mut scratch).map_err(bad)?;
        cache.record(digest, key.serial);
        Ok(valid)
    }

    /// Steps 9 and 10 for the holder and each companion.
    pub fn judge(&self, auth: &Authentic<'_>, policy: &Policy, venue: VenueId) -> Decision {
        let c = auth.claims();
        let holder = self.judge_subject(policy, venue, &c.sub, c.color, c.ver);
        let companions = c.with.map(|with| {
            let mut out = CompanionJudgements::default();
            for m in with.as_slice() {
                out.items[usize::from(out.len)] =
                    self.judge_subject(policy, venue, &m.sub, m.color, m.ver);
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
        let mut j = policy.judge(venue, effective);
        if effective != color && policy.judge(venue, color).verdict != j.verdict {
            j.reason = Reason::StatusChanged;
        }
        j
    }

    /// A card check (`policy.md`): the document's pseudonym looked up in the status set,
    /// green when absent.
    pub fn decide_card(
        &self,
        kind: CardKind,
        number: &str,
        venue: &str,
    ) -> Result<Decision, RequestError> {
        let policy = self.policy.load();
        let policy = policy.as_deref().ok_or(RequestError::NoPolicy)?;
        let venue = policy.venue(venue).ok_or(RequestError::UnknownVenue)?;
        let keys = self
            .pseudonyms
            .as_ref()
            .ok_or(RequestError::NoPseudonymKey)?;
        let sub = keys.pseudonym(kind, number);
        let color = self.status.get(&sub).map_or(Color::Green, |s| s.color);
        Ok(Decision {
            holder: policy.judge_card(venue, color),
            companions: None,
            policy_version: policy.version(),
        })
    }

    /// Applies one feed event. Only a policy that is not newer is refused.
    pub fn apply(&self, event: Event) -> Result<Applied, PolicyError> {
        Ok(match event {
            Event::Status { sub, status, .. } => Applied::Status(self.status.apply(sub, status)),
            Event::RevokeToken { cti, exp } => {
                self.revoked.revoke(cti, exp);
                Applied::TokenRevoked
            }
            Event::KeyAdd { key, signed } => {
                let mut kept = false;
                self.trust.rcu(|t| {
                    let older = t.get(key.kid.as_bytes()).is_some_and(|held| {
                        held.to_entry().public_key != key.to_entry().public_key
                            && held.seq.is_some_and(|s| key.seq.is_none_or(|n| n <= s))
                    });
                    kept = older;
                    if older {
                        (**t).clone()
                    } else {
                        t.with_key((*key).clone())
                    }
                });
                if kept {
                    return Ok(Applied::KeyKept);
                }
                self.keep_key_doc(signed);
                Applied::KeyAdded
            }
            Event::KeyRevoke { kid, signed } => {
                self.trust.rcu(|t| t.with_revoked(kid));
                self.keep_key_doc(signed);
                Applied::KeyRevoked
            }
            Event::Policy(p) => {
                let version = p.version();
                self.install_policy(*p)?;
                Applied::Policy { version }
            }
            Event::Heartbeat { .. } => Applied::Heartbeat,
        })
    }

    /// Replaces the policy if `p` is newer than the one in force (or none is).
    pub fn install_policy(&self, p: Policy) -> Result<(), PolicyError> {
        let p = Arc::new(p);
        let mut refused = None;
        self.policy.rcu(|cur| match cur {
            Some(c) if c.version() >= p.version() => {
                refused = Some(c.version());
                cur.clone()
            }
            _ => {
                refused = None;
                Some(p.clone())
            }
        });
        match refused {
            Some(current) => Err(PolicyError::NotNewer {
                got: p.version(),
                current,
            }),
            None => Ok(()),
        }
    }

    /// Runs the forgetting rules of `feed.md`; returns (statuses, revoked tokens) dropped.
    pub fn forget(&self, now: u64) -> (usize, usize) {
        (
            self.status.forget(now, self.limits.max_validity),
            self.revoked.forget(now),
        )
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn status(&self) -> &StatusSet {
        &self.status
    }

    pub fn revoked_tokens(&self) -> &RevokedTokens {
        &self.revoked
    }

    pub fn trust(&self) -> Arc<TrustList> {
        self.trust.load_full()
    }

    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.load_full()
    }

    pub fn sig_cache(&self) -> Option<&SigCache> {
        self.cache.as_ref()
    }

    /// Whether card checks are possible.
    pub fn has_pseudonym_key(&self) -> bool {
        self.pseudonyms.is_some()
    }
}

/// Whether a decision allows (the holder).
pub fn allowed(d: &Decision) -> bool {
    d.holder.verdict == Verdict::Allow
}
