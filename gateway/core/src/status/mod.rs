//! The status set: who turned red or yellow (or back to green) since their token was
//! issued, plus the tokens revoked through the feed.
//!
//! A sharded map from the 16-byte pseudonym to a (version, time, color) entry: 1,024
//! shards, each an `RwLock` over the table of `status_table.rs` (32-byte slots, one cache
//! line read per lookup). Measured in `benches/README.md` against dashmap and sharded
//! hashbrown. Pseudonyms are HMAC outputs, so their own bytes serve as the hash; only
//! the trusted feed inserts, so nobody can aim collisions at a shard.
//!
//! Forgetting ([`StatusSet::forget`]) goes one shard at a time under that shard's write
//! lock: a reader waits at most for one shard's rebuild (about 10,000 entries at
//! 10 million subjects, ~0.1 ms), and readers of the other 1,023 shards never wait.
//!
//! At 10 million subjects the tables take ~540 MiB read at random, so a lookup costs one
//! cache miss, plus a TLB miss and a page walk unless the memory sits in huge pages: the
//! binaries' jemalloc is built to ask for them (`.cargo/config.toml`).

pub(crate) mod id;
pub mod pseudonym;
mod table;

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashMap;
use parking_lot::RwLock;

use crate::status::table::{Slot, Table};

pub use crate::status::id::ShortId as Cti;

/// A subject's pseudonym: the first 16 bytes of an HMAC-SHA256 (`token.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Sub(pub [u8; 16]);

impl Hash for Sub {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(w));
    }
}

/// A code color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Color {
    #[default]
    /// Green.
    Green = 0,
    /// Yellow.
    Yellow = 1,
    /// Red.
    Red = 2,
}

impl Color {
    /// From the token's integer code (0, 1, 2).
    pub fn from_code(v: u64) -> Option<Color> {
        match v {
            0 => Some(Color::Green),
            1 => Some(Color::Yellow),
            2 => Some(Color::Red),
            _ => None,
        }
    }

    /// The token's integer code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The name used in JSON (`green`, `yellow`, `red`).
    pub fn name(self) -> &'static str {
        match self {
            Color::Green => "green",
            Color::Yellow => "yellow",
            Color::Red => "red",
        }
    }

    /// Parses the JSON name.
    pub fn from_name(s: &str) -> Option<Color> {
        match s {
            "green" => Some(Color::Green),
            "yellow" => Some(Color::Yellow),
            "red" => Some(Color::Red),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Color {
        match v {
            0 => Color::Green,
            1 => Color::Yellow,
            _ => Color::Red,
        }
    }
}

/// What the set holds for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The color.
    pub color: Color,
    /// The status version (only a higher one replaces it).
    pub ver: u64,
    /// When the status was set (`at` of the event), seconds since the epoch.
    pub at: u64,
}

fn unpack(s: &Slot) -> Status {
    Status {
        color: Color::from_u8(s.color),
        ver: s.ver,
        at: u64::from(s.at),
    }
}

/// Uses the first eight bytes of the pseudonym as the hash (see the module docs).
#[derive(Clone, Copy, Default)]
pub struct SubHash;

impl BuildHasher for SubHash {
    type Hasher = SubHasher;
    fn build_hasher(&self) -> SubHasher {
        SubHasher(0)
    }
}

/// The hasher behind [`SubHash`]; only `write_u64` is ever called by [`Sub`]'s `Hash`.
pub struct SubHasher(u64);

impl Hasher for SubHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Number of shards: a power of two, large enough that a shard's sweep is short.
pub const SHARDS: usize = 1024;

/// What applying a status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    /// The subject is new or moved to a higher version.
    Updated,
    /// The set already held this version or a higher one.
    Stale,
}

/// One shard, alone on its cache lines: two threads reading different shards must not
/// bounce a shared line between cores (measured: it nearly doubled lookup time).
#[repr(align(128))]
struct Shard(RwLock<Table>);

/// The sharded status set. Readers take one shard's read lock for a few nanoseconds.
pub struct StatusSet {
    shards: Box<[Shard]>,
}

impl Default for StatusSet {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusSet {
    /// An empty status set.
    pub fn new() -> Self {
        StatusSet {
            shards: (0..SHARDS)
                .map(|_| Shard(RwLock::new(Table::with_capacity(0))))
                .collect(),
        }
    }

    /// Pre-sizes every shard for `n` subjects in all, so a large replay does not rehash.
    pub fn with_capacity(n: usize) -> Self {
        let per = n.div_ceil(SHARDS);
        StatusSet {
            shards: (0..SHARDS)
                .map(|_| Shard(RwLock::new(Table::with_capacity(per))))
                .collect(),
        }
    }

    #[inline]
    fn shard(&self, sub: &Sub) -> &RwLock<Table> {
        // Bytes 8..10 pick the shard; bytes 0..8 are the hash inside it.
        let i = usize::from(u16::from_le_bytes([sub.0[8], sub.0[9]])) % SHARDS;
        &self.shards[i].0
    }

    /// The subject's status, if the set holds one.
    #[inline]
    pub fn get(&self, sub: &Sub) -> Option<Status> {
        self.shard(sub).read().get(&sub.0).map(unpack)
    }

    /// Sets the status if `status.ver` is above the one held (idempotent, order-safe).
    pub fn apply(&self, sub: Sub, status: Status) -> StatusApplied {
        let at = u32::try_from(status.at).unwrap_or(u32::MAX);
        let wrote = self.shard(&sub).write().upsert(sub.0, |cur| match cur {
            Some(held) if held.ver >= status.ver => None,
            _ => Some((status.ver, at, status.color as u8)),
        });
        if wrote {
            StatusApplied::Updated
        } else {
            StatusApplied::Stale
        }
    }

    /// Makes room for `n` subjects in all (for a large replay or snapshot load, so the
    /// tables do not rehash on the way). Shard by shard; readers of other shards never wait.
    pub fn reserve(&self, n: usize) {
        let per = n.div_ceil(SHARDS);
        for shard in self.shards.iter() {
            shard.0.write().reserve(per);
        }
    }

    /// Drops green entries whose `at + max_validity` has passed (`feed.md`, "Forgetting"):
    /// no token issued before that version can still be valid. Returns how many went.
    pub fn forget(&self, now: u64, max_validity: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            dropped += shard.0.write().remove_where(|s| {
                s.color == Color::Green as u8 && u64::from(s.at).saturating_add(max_validity) < now
            });
        }
        dropped
    }

    /// Bytes held by the tables (not counting allocator overhead).
    pub fn allocated_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().allocated_bytes())
            .sum::<usize>()
            + std::mem::size_of::<Shard>() * SHARDS
    }

    /// Subjects held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().len()).sum()
    }

    /// Whether no subject is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, shard by shard (for snapshots); each shard is copied under its lock.
    pub fn for_each(&self, mut f: impl FnMut(Sub, Status)) {
        for shard in self.shards.iter() {
            let items: Vec<(Sub, Status)> = shard
                .0
                .read()
                .iter()
                .map(|s| (Sub(s.key), unpack(s)))
                .collect();
            for (k, v) in items {
                f(k, v);
            }
        }
    }
}

/// Tokens revoked through the feed, each until its `exp`.
pub struct RevokedTokens {
    shards: Box<[RwLock<HashMap<Cti, u64>>]>,
    /// Picks the shard; one instance, since each `default()` is seeded anew.
    hasher: hashbrown::DefaultHashBuilder,
}

const CTI_SHARDS: usize = 64;

impl Default for RevokedTokens {
    fn default() -> Self {
        RevokedTokens {
            shards: (0..CTI_SHARDS)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }
}

impl RevokedTokens {
    fn shard(&self, cti: &Cti) -> &RwLock<HashMap<Cti, u64>> {
        let h = self.hasher.hash_one(cti);
        &self.shards[(h >> 58) as usize % CTI_SHARDS]
    }

    /// Revokes `cti` until `exp` (a later `exp` for the same id wins).
    pub fn revoke(&self, cti: Cti, exp: u64) {
        let mut s = self.shard(&cti).write();
        let e = s.entry(cti).or_insert(exp);
        *e = (*e).max(exp);
    }

    /// Whether `cti` is revoked. An entry past its `exp` may linger until the next
    /// [`forget`](Self::forget), which is harmless: such a token is expired anyway.
    #[inline]
    pub fn is_revoked(&self, cti: &[u8]) -> bool {
        match Cti::new(cti) {
            Some(c) => self.shard(&c).read().contains_key(&c),
            None => false,
        }
    }

    /// Drops entries whose `exp` has passed.
    pub fn forget(&self, now: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut s = shard.write();
            let before = s.len();
            s.retain(|_, exp| *exp >= now);
            dropped += before - s.len();
        }
        dropped
    }

    /// Tokens held as revoked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether no token is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry (for snapshots).
    pub fn for_each(&self, mut f: impl FnMut(Cti, u64)) {
        for shard in self.shards.iter() {
            for (k, v) in shard.read().iter() {
                f(*k, *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(color: Color, ver: u64, at: u64) -> Status {
        Status { color, ver, at }
    }

    #[test]
    fn only_higher_versions_apply() {
        let set = StatusSet::new();
        let s = Sub([7; 16]);
        assert_eq!(set.apply(s, st(Color::Red, 5, 10)), StatusApplied::Updated);
        assert_eq!(set.apply(s, st(Color::Green, 5, 11)), StatusApplied::Stale);
        assert_eq!(set.apply(s, st(Color::Green, 4, 12)), StatusApplied::Stale);
        assert_eq!(set.get(&s), Some(st(Color::Red, 5, 10)));
        assert_eq!(
            set.apply(s, st(Color::Green, 6, 13)),
            StatusApplied::Updated
        );
        assert_eq!(set.get(&s), Some(st(Color::Green, 6, 13)));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn forgetting_keeps_yellow_red_and_recent_green() {
        let set = StatusSet::new();
        let (g_old, g_new, r_old) = (Sub([1; 16]), Sub([2; 16]), Sub([3; 16]));
        set.apply(g_old, st(Color::Green, 1, 100));
        set.apply(g_new, st(Color::Green, 1, 200));
        set.apply(r_old, st(Color::Red, 1, 100));
        // at + max_validity = 150 for g_old: passed at now = 151, not at 150.
        assert_eq!(set.forget(150, 50), 0);
        assert_eq!(set.forget(151, 50), 1);
        assert_eq!(set.get(&g_old), None);
        assert!(set.get(&g_new).is_some());
        assert!(set.get(&r_old).is_some());
    }

    #[test]
    fn revoked_tokens_expire() {
        let r = RevokedTokens::default();
        let c = Cti::new(&[1; 8]).unwrap();
        r.revoke(c, 100);
        assert!(r.is_revoked(&[1; 8]));
        assert!(!r.is_revoked(&[1; 9]));
        assert_eq!(r.forget(100), 0);
        assert_eq!(r.forget(101), 1);
        assert!(!r.is_revoked(&[1; 8]));
        assert!(Cti::new(&[]).is_none());
        assert!(Cti::new(&[0; 17]).is_none());
    }
}
