//! The status lists a gateway keeps and relays (`offline.md`, "The feed carries them"):
//! per URI the newest full list and the updates applied on top of it, as the bytes that
//! were signed (served as they are, never copied per request), within the bounds of the
//! spec: 16 URIs, 4,096 updates per list, 256 MiB of inflated lists in all, a NAME held
//! under one URI only; a list past its `exp` dropped with its updates.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::offline::held::{HeldList, Offered, UpdateError};
use crate::offline::list::{ListUpdate, StatusList};
use crate::token::list_name;

/// Lists (URIs) held at most.
pub const MAX_LISTS: usize = 16;
/// Updates held per list at most (applied and aside).
pub const MAX_UPDATES: usize = 4096;
/// Inflated bytes of every list together, at most.
pub const MAX_INFLATED: usize = 256 << 20;

/// Why a verified list or update is not kept (counted by kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A list whose `iat` is not above the held one's for its URI.
    #[error("status list not newer than the one held")]
    NotNewer,
    /// A list whose `exp` has passed.
    #[error("status list expired")]
    Expired,
    /// A new URI beyond [`MAX_LISTS`].
    #[error("too many status lists")]
    TooManyLists,
    /// Its NAME is held under another URI.
    #[error("status list name held under another URI")]
    NameTaken,
    /// Beyond [`MAX_INFLATED`] with the others.
    #[error("status lists too large together")]
    TooLarge,
    /// An update for a list not held.
    #[error("update for a status list not held")]
    NoList,
    /// Beyond [`MAX_UPDATES`] for its list.
    #[error("too many updates for one status list")]
    TooManyUpdates,
    /// The update does not apply ([`UpdateError`]).
    #[error("{0}")]
    Update(#[from] UpdateError),
}

impl StoreError {
    /// The label of `gateway_status_lists_refused_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotNewer => "not_newer",
            StoreError::Expired => "expired",
            StoreError::TooManyLists | StoreError::TooLarge | StoreError::TooManyUpdates => {
                "bounds"
            }
            StoreError::NameTaken => "name_taken",
            StoreError::NoList => "no_list",
            StoreError::Update(UpdateError::OtherBase) => "other_base",
            StoreError::Update(_) => "update",
        }
    }
}

/// One list as held: its state and the signed bytes to relay.
#[derive(Debug, Clone)]
pub struct Entry {
    held: HeldList,
    name: String,
    /// The list's COSE bytes as published.
    list: Bytes,
    /// The applied updates' bytes, `n` = 1, 2, … in order.
    updates: Vec<Bytes>,
    /// Updates held aside, by `n`.
    aside: BTreeMap<u64, Bytes>,
}

impl Entry {
    /// The list with its applied updates.
    pub fn held(&self) -> &HeldList {
        &self.held
    }

    /// The NAME (last segment of its URI).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The list's bytes as published.
    pub fn list_bytes(&self) -> &Bytes {
        &self.list
    }

    /// The applied updates with `n` above `after`, in order.
    pub fn updates_after(&self, after: u64) -> &[Bytes] {
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        self.updates.get(from..).unwrap_or(&[])
    }

    /// Updates applied and held aside.
    pub fn update_count(&self) -> usize {
        self.updates.len() + self.aside.len()
    }
}

/// Every list held.
#[derive(Debug, Clone, Default)]
pub struct Store {
    entries: Vec<Entry>,
}

impl Store {
    /// The lists held, in the order they first came.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The list whose URI ends in `/status-lists/NAME`.
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The list held for `uri`.
    pub fn by_uri(&self, uri: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.held.list().uri == uri)
    }

    fn inflated(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.held.list().bits.as_bytes().len())
            .sum()
    }

    /// Keeps a verified list (its `bytes` as published) at `now`: newer than the one
    /// held for its URI, it replaces it and every update.
    pub fn offer_list(
        &mut self,
        bytes: Bytes,
        list: StatusList,
        now: u64,
    ) -> Result<(), StoreError> {
        if list.exp.is_some_and(|e| e <= now) {
            return Err(StoreError::Expired);
        }
        let name = list_name(&list.uri).unwrap_or_default().to_owned();
        let size = list.bits.as_bytes().len();
        let held_at = self
            .entries
            .iter()
            .position(|e| e.held.list().uri == list.uri);
        if self
            .entries
            .iter()
            .any(|e| e.name == name && e.held.list().uri != list.uri)
        {
            return Err(StoreError::NameTaken);
        }
        let others = self.inflated()
            - held_at.map_or(0, |i| self.entries[i].held.list().bits.as_bytes().len());
        if others + size > MAX_INFLATED {
            return Err(StoreError::TooLarge);
        }
        let entry = Entry {
            held: HeldList::new(list),
            name,
            list: bytes,
            updates: Vec::new(),
            aside: BTreeMap::new(),
        };
        match held_at {
            Some(i) => {
                if entry.held.list().iat <= self.entries[i].held.list().iat {
                    return Err(StoreError::NotNewer);
                }
                self.entries[i] = entry;
            }
            None if self.entries.len() >= MAX_LISTS => return Err(StoreError::TooManyLists),
            None => self.entries.push(entry),
        }
        Ok(())
    }

    /// Offers a verified update (its `bytes` as published) to the list of its URI.
    pub fn offer_update(&mut self, bytes: Bytes, u: ListUpdate) -> Result<Offered, StoreError> {
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.held.list().uri == u.uri)
            .ok_or(StoreError::NoList)?;
        if e.update_count() >= MAX_UPDATES {
            return Err(StoreError::TooManyUpdates);
        }
        let n = u.n;
        let before = e.held.applied();
        let offered = e.held.offer(u)?;
        if offered == Offered::HeldAside {
            e.aside.insert(n, bytes);
            return Ok(offered);
        }
        e.updates.push(bytes);
        for k in before + 2..=e.held.applied() {
            if let Some(b) = e.aside.remove(&k) {
                e.updates.push(b);
            }
        }
        // Any left aside at or below the applied one was dropped by the list.
        let (applied, held) = (e.held.applied(), &e.held);
        e.aside.retain(|k, _| *k > applied && held.is_aside(*k));
        Ok(offered)
    }

    /// Drops the lists whose `exp` has passed at `now`, with their updates; how many.
    pub fn drop_expired(&mut self, now: u64) -> usize {
        let n = self.entries.len();
        self.entries
            .retain(|e| e.held.list().exp.is_none_or(|x| x > now));
        n - self.entries.len()
    }
}

impl crate::offline::held::Lists for Store {
    fn list(&self, uri: &str) -> Option<&HeldList> {
        self.by_uri(uri).map(Entry::held)
    }

    fn revoked(&self, cti: &crate::status::Cti, now: u64) -> bool {
        self.entries.iter().any(|e| e.held.is_revoked(cti, now))
    }
}
