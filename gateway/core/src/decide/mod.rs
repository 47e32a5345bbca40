//! The one entry point: a scanned code, a venue and the time in; a decision out. The read
//! path is `read.rs` (begin, settle, finish: one pipeline for every endpoint), the feed's
//! write side `write.rs`; this module holds the state both touch and the answers.
//!
//! The checks run in the order of `token.md` and the first failure decides. Each stage
//! hands the next a value it could not have got otherwise: [`Token`](crate::token::Token) (decoded),
//! [`SignatureValid`] (verified), [`Authentic`] (steps 2 to 8 passed); the status and
//! policy steps take `&Authentic`. This module holds the state those steps read, and
//! the feed writes into it through [`Verifier::apply`].

pub mod answer;
pub(crate) mod read;
pub(crate) mod reason;
pub mod receipt;
mod write;

pub use read::{Begun, Pending};
pub use write::ApplyError;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::decide::reason::Reason;
use crate::policy::rollout::{Change, Rules};
use crate::policy::{Conditions, Judgement, Policy, PolicyError, Verdict};
use crate::pseudonym::PseudonymKey;
use crate::sigcache::SigCache;
use crate::status::{RevokedTokens, StatusApplied, StatusSet};
use crate::token::{Claims, MAX_COMPANIONS};
use crate::trust::signature::SignatureValid;
use crate::trust::{Kid, TrustList, TrustedKey};

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
    /// The time limits of step 7.
    pub limits: Limits,
    /// Tokens the signature cache holds; 0 turns it off. Default 1,000,000 (about
    /// 100 MB, see `benches/README.md`).
    pub sig_cache_capacity: usize,
    /// Subjects to pre-size the status set for.
    pub expected_subjects: usize,
    /// The receipt key's 32 bytes (R, derived from the feed key:
    /// [`receipt::ReceiptKey::derive`]): every deny then carries a receipt (`api.md`
    /// revision 4); none without.
    pub receipt_key: Option<[u8; 32]>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            sig_cache_capacity: 1_000_000,
            expected_subjects: 0,
            receipt_key: None,
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
    /// The companions' judgements, in the order of the token's `with`.
    pub fn as_slice(&self) -> &[Judgement] {
        &self.items[..usize::from(self.len)]
    }

    /// Appends one (a token has at most [`MAX_COMPANIONS`]; more are dropped).
    pub(crate) fn push(&mut self, j: Judgement) {
        if let Some(slot) = self.items.get_mut(usize::from(self.len)) {
            *slot = j;
            self.len += 1;
        }
    }
}

/// The answer to one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The holder's judgement.
    pub holder: Judgement,
    /// Present only when the token passed steps 1 to 8 and carries `with`.
    pub companions: Option<CompanionJudgements>,
    /// The version of the policy that judged (0 when no policy was reached).
    pub policy_version: u64,
}

impl Decision {
    /// Every judgement of the scan: the holder's, then each companion's.
    pub fn everyone(&self) -> impl Iterator<Item = &Judgement> {
        std::iter::once(&self.holder).chain(
            self.companions
                .as_ref()
                .map(CompanionJudgements::as_slice)
                .unwrap_or_default(),
        )
    }

    /// Whether a door may open for everyone the code brings (`api.md` revision 4, the
    /// proxy check): the holder and every companion allowed.
    pub fn everyone_allowed(&self) -> bool {
        self.everyone().all(|j| j.verdict == Verdict::Allow)
    }

    /// The conditions of everyone the code brings, each once.
    pub fn everyones_conditions(&self) -> Conditions {
        self.everyone()
            .fold(Conditions::NONE, |c, j| c.union(j.conditions))
    }

    /// The holder's receipt, or else the first denied companion's (`x-jkm-receipt`).
    pub fn first_receipt(&self) -> Option<receipt::Receipt> {
        self.everyone().find_map(|j| j.receipt)
    }

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
    /// The verified claims.
    pub fn claims(&self) -> &'t Claims<'t> {
        &self.sig.token().claims
    }

    /// The trust-list key that verified them.
    pub fn key(&self) -> &'t TrustedKey {
        self.sig.key()
    }
}

/// What applying a feed event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A status event, and what it did to the set.
    Status(StatusApplied),
    /// A token revoked.
    TokenRevoked,
    /// An issuer key added (or replaced).
    KeyAdded,
    /// A `key` add for a kid already held with another public key, not applied: the
    /// held key's document has a `seq` and this one's is not above it (a replayed
    /// older document would otherwise roll a re-keyed kid back).
    KeyKept,
    /// An issuer key revoked.
    KeyRevoked,
    /// A newer policy: in force, pending or in shadow (`policy.md` revision 4).
    Policy(Change),
    /// A status list kept (`offline.md`).
    StatusList,
    /// A status list update applied or held aside.
    StatusListUpdate,
    /// A heartbeat (nothing to change).
    Heartbeat,
}

/// The verification state: trust list, policy, status set, revocations and the
/// signature cache. Shared by every request; written only by the feed.
pub struct Verifier {
    limits: Limits,
    trust: ArcSwap<TrustList>,
    /// The policy in force, the pending one and the shadow, swapped whole.
    rules: ArcSwap<Rules>,
    /// Held by whoever replaces `rules` (the feed, the clock), so a switch happens once.
    rules_writer: parking_lot::Mutex<()>,
    status: StatusSet,
    revoked: RevokedTokens,
    cache: Option<SigCache>,
    pseudonyms: Option<PseudonymKey>,
    /// Makes the receipts of denies, when there is a feed key.
    receipts: Option<receipt::ReceiptKey>,
    /// The root-signed key documents in force, one per kid (the last applied; a
    /// revocation replaces its kid's add), in the order their kids first came, so a
    /// snapshot can carry them and a restore verify them again and reach the same state.
    key_docs: parking_lot::Mutex<Vec<(Kid, String)>>,
    /// The status lists relayed to offline gates (`offline.md`).
    lists: parking_lot::RwLock<crate::offline::store::Store>,
}

impl Verifier {
    /// A verifier with this trust list, policy (none: every request is `no_policy` until the feed brings one) and pseudonym key.
    pub fn new(
        settings: Settings,
        trust: TrustList,
        policy: Option<Policy>,
        pseudonyms: Option<PseudonymKey>,
    ) -> Self {
        Verifier {
            limits: settings.limits,
            trust: ArcSwap::from_pointee(trust),
            rules: ArcSwap::from_pointee(Rules::new(policy)),
            rules_writer: parking_lot::Mutex::new(()),
            status: StatusSet::with_capacity(settings.expected_subjects),
            revoked: RevokedTokens::default(),
            cache: (settings.sig_cache_capacity > 0)
                .then(|| SigCache::new(settings.sig_cache_capacity)),
            pseudonyms,
            receipts: settings.receipt_key.map(receipt::ReceiptKey::from_bytes),
            key_docs: parking_lot::Mutex::new(Vec::new()),
            lists: parking_lot::RwLock::new(Default::default()),
        }
    }

    /// The root-signed key documents applied so far (see [`Verifier::apply`]).
    pub fn key_docs(&self) -> Vec<String> {
        self.key_docs
            .lock()
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }

    fn keep_key_doc(&self, kid: Kid, signed: String) {
        let mut docs = self.key_docs.lock();
        match docs.iter_mut().find(|(k, _)| *k == kid) {
            Some(held) => held.1 = signed,
            None => docs.push((kid, signed)),
        }
    }

    /// The status lists held (read them briefly: the feed writes under the same lock).
    pub fn lists(&self) -> parking_lot::RwLockReadGuard<'_, crate::offline::store::Store> {
        self.lists.read()
    }

    /// Drops the status lists whose `exp` has passed at `now`; how many.
    pub fn drop_expired_lists(&self, now: u64) -> usize {
        self.lists.write().drop_expired(now)
    }

    /// The time limits of step 7.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The status set (read by snapshots and the admin port).
    pub fn status(&self) -> &StatusSet {
        &self.status
    }

    /// The revoked tokens (read by snapshots).
    pub fn revoked_tokens(&self) -> &RevokedTokens {
        &self.revoked
    }

    /// The trust list in force.
    pub fn trust(&self) -> Arc<TrustList> {
        self.trust.load_full()
    }

    /// The policy in force, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.rules.load().in_force_arc()
    }

    /// The policies held: in force, pending, shadow (`policy.md` revision 4).
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.load_full()
    }

    /// Offers a verified policy document at `now`: refused unless newer than the ones
    /// held; else in force, pending or in shadow (see [`Rules::offer`]).
    pub fn offer_policy(&self, p: Policy, now: u64) -> Result<Change, PolicyError> {
        let _w = self.rules_writer.lock();
        let (next, change) = self.rules.load().offer(p, now)?;
        self.rules.store(Arc::new(next));
        Ok(change)
    }

    /// Puts the pending policy in force if its time has come at `now`; `Some` for the one
    /// call that made the switch.
    pub fn switch_due(&self, now: u64) -> Option<Change> {
        let _w = self.rules_writer.lock();
        let (next, change) = self.rules.load().due(now)?;
        self.rules.store(Arc::new(next));
        Some(change)
    }

    /// The signature cache, if there is one (`sig_cache_capacity` above 0).
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
