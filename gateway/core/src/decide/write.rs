//! The write side: the feed's events applied to the state the read path reads.

use super::{Applied, Verifier};
use crate::feed_event::Event;
use crate::offline::list::{ListError, ListUpdate, StatusList};
use crate::offline::store::StoreError;
use crate::policy::PolicyError;

/// Why a feed event that parsed is not applied (nothing changes).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A policy not newer than the ones held.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// A status list or update that fails its checks.
    #[error("status list: {0}")]
    List(#[from] ListError),
    /// A status list or update not kept.
    #[error("status list: {0}")]
    Store(#[from] StoreError),
}

impl ApplyError {
    /// The label of `gateway_feed_rejected_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Policy(_) => "policy_version",
            ApplyError::List(_) => "status_list",
            ApplyError::Store(e) => e.kind(),
        }
    }
}

impl Verifier {
    /// Applies one feed event at `now` (seconds since the epoch: when a scheduled policy
    /// arrives after its time, it takes force at once). Only a policy that is not newer
    /// is refused.
    pub fn apply(&self, event: Event, now: u64) -> Result<Applied, ApplyError> {
        Ok(match event {
            Event::Status { sub, status, .. } => Applied::Status(self.status.apply(sub, status)),
            Event::RevokeToken { cti, exp } => {
                self.revoked.revoke(cti, exp);
                Applied::TokenRevoked
            }
            Event::KeyAdd { key, signed } => {
                // feed.md revision 4: for a kid already held, applied only when the
                // held document has no `seq` or this one's is greater, whatever the
                // public key (a replay can neither widen a window nor bring back a
                // key), and a document without `seq` never replaces one with it.
                let mut kept = false;
                self.trust.rcu(|t| {
                    let older = t.get(key.kid.as_bytes()).is_some_and(|held| {
                        held.seq.is_some_and(|s| key.seq.is_none_or(|n| n <= s))
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
                self.keep_key_doc(key.kid, signed);
                Applied::KeyAdded
            }
            Event::KeyRevoke { kid, signed } => {
                self.trust.rcu(|t| t.with_revoked(kid));
                self.keep_key_doc(kid, signed);
                Applied::KeyRevoked
            }
            Event::Policy(p) => Applied::Policy(self.offer_policy(*p, now)?),
            Event::StatusList(bytes) => {
                let list = StatusList::open(&bytes, &self.trust.load(), now, self.limits.skew)?;
                self.lists.write().offer_list(bytes, list, now)?;
                Applied::StatusList
            }
            Event::StatusListUpdate(bytes) => {
                let u = ListUpdate::open(&bytes, &self.trust.load(), now, self.limits.skew)?;
                self.lists.write().offer_update(bytes, u)?;
                Applied::StatusListUpdate
            }
            Event::Heartbeat { .. } => Applied::Heartbeat,
        })
    }

    /// Runs the forgetting rules of `feed.md`; returns (statuses, revoked tokens) dropped.
    pub fn forget(&self, now: u64) -> (usize, usize) {
        (
            self.status.forget(now, self.limits.max_validity),
            self.revoked.forget(now),
        )
    }
}
