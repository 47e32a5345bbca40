//! One status list as a holder keeps it (`offline.md`, "Status list updates"): the list,
//! the updates applied on top of it in order, the ones that came early held aside (at
//! most [`MAX_ASIDE`]) until the gap fills, and the tokens revoked by either. The
//! gateway relays what it holds; a validator decides from it.

use std::collections::{BTreeMap, HashMap};

use crate::offline::list::{ListUpdate, Revoked, StatusList};
use crate::status::Cti;

/// The lists a holder keeps, as the offline decision asks them
/// ([`crate::Verifier::decide_offline`]).
pub trait Lists {
    /// The list held for `uri`, if any (with its updates applied).
    fn list(&self, uri: &str) -> Option<&HeldList>;
    /// Whether a held list or an applied update revoked `cti`, its `exp` not past.
    fn revoked(&self, cti: &Cti, now: u64) -> bool;
}

/// Updates that came before their predecessor, held per list.
pub const MAX_ASIDE: usize = 64;

/// Why an update is not applied (the list stays as it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// It is for another list.
    #[error("update for another list")]
    OtherList,
    /// Its `base` is not the held list's `iat` (the list was replaced, or not yet).
    #[error("update extends another list (base)")]
    OtherBase,
    /// Its `n` was applied or is held already.
    #[error("update n repeated")]
    Repeated,
    /// Its `iat` is not above the previous update's (or the list's).
    #[error("update iat not above the previous one's")]
    NotNewer,
    /// It names an index at or beyond the list's length.
    #[error("update index beyond the list")]
    IndexBeyond,
    /// Already [`MAX_ASIDE`] updates wait for a gap to fill.
    #[error("too many updates held aside")]
    TooManyAside,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Applied, with this many held-aside updates after it.
    Applied(usize),
    /// Held aside until its predecessor comes.
    HeldAside,
}

/// A list with its updates.
#[derive(Debug, Clone)]
pub struct HeldList {
    list: StatusList,
    /// The `n` of the last update applied (0: the list alone).
    applied: u64,
    /// The list's time T: the `iat` of the last update applied, else the list's.
    time: u64,
    aside: BTreeMap<u64, ListUpdate>,
    revoked: HashMap<Cti, u64>,
}

impl HeldList {
    /// A fresh list, no update on it.
    pub fn new(list: StatusList) -> HeldList {
        let revoked = list.revoked.iter().map(|r| (r.cti, r.exp)).collect();
        HeldList {
            time: list.iat,
            list,
            applied: 0,
            aside: BTreeMap::new(),
            revoked,
        }
    }

    /// The list as it stands (values with every applied update).
    pub fn list(&self) -> &StatusList {
        &self.list
    }

    /// The list's time T (`offline.md` step 9).
    pub fn time(&self) -> u64 {
        self.time
    }

    /// The `n` of the last update applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Updates waiting for a gap to fill.
    pub fn aside(&self) -> usize {
        self.aside.len()
    }

    /// Whether update `n` waits for a gap to fill.
    pub fn is_aside(&self, n: u64) -> bool {
        self.aside.contains_key(&n)
    }

    /// The value at `idx`, `None` beyond the list.
    pub fn value(&self, idx: u32) -> Option<u8> {
        self.list.bits.get(idx as usize)
    }

    /// Whether `cti` was revoked by the list or an applied update and its `exp` is not
    /// past at `now`.
    pub fn is_revoked(&self, cti: &Cti, now: u64) -> bool {
        self.revoked.get(cti).is_some_and(|exp| *exp > now)
    }

    /// Offers an update: applied when it is the next, held aside when it is early.
    pub fn offer(&mut self, u: ListUpdate) -> Result<Offered, UpdateError> {
        if u.uri != self.list.uri {
            return Err(UpdateError::OtherList);
        }
        if u.base != self.list.iat {
            return Err(UpdateError::OtherBase);
        }
        if u.n <= self.applied || self.aside.contains_key(&u.n) {
            return Err(UpdateError::Repeated);
        }
        let len = self.list.bits.len() as u64;
        if u.changes.iter().any(|(i, _)| u64::from(*i) >= len) {
            return Err(UpdateError::IndexBeyond);
        }
        if u.n > self.applied + 1 {
            if self.aside.len() >= MAX_ASIDE {
                return Err(UpdateError::TooManyAside);
            }
            self.aside.insert(u.n, u);
            return Ok(Offered::HeldAside);
        }
        self.apply(u)?;
        let mut after = 0;
        while let Some(next) = self.aside.remove(&(self.applied + 1)) {
            // One held aside whose time is not above its predecessor's is dropped, and
            // the ones after it wait for a good one of its `n`.
            if self.apply(next).is_err() {
                break;
            }
            after += 1;
        }
        Ok(Offered::Applied(after))
    }

    fn apply(&mut self, u: ListUpdate) -> Result<(), UpdateError> {
        if u.iat <= self.time {
            return Err(UpdateError::NotNewer);
        }
        for (idx, v) in &u.changes {
            self.list.bits.set(*idx as usize, *v);
        }
        for Revoked { cti, exp } in &u.revoked {
            self.revoked.insert(*cti, *exp);
        }
        self.applied = u.n;
        self.time = u.iat;
        Ok(())
    }
}
