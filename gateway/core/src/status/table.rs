//! One shard's table: open addressing over 64-byte buckets of two 32-byte slots, the key
//! stored in the slot itself, so a lookup usually reads one cache line (hashbrown reads
//! two: its control bytes and its bucket). Measured against hashbrown and dashmap in
//! `benches/README.md`.
//!
//! A key's home bucket comes from its first eight bytes (pseudonyms are uniform HMAC
//! outputs; only the trusted feed inserts). Probing goes bucket by bucket; a bucket that
//! ever turned a key away carries an overflow mark, and a lookup stops at the first full
//! or unmarked bucket without the key. Nothing is ever removed in place: forgetting
//! rebuilds the table from the entries kept, which also clears stale marks.

/// Marks an empty slot in the `color` byte (colors are 0, 1, 2).
const EMPTY: u8 = 0xff;
/// Largest share of slots in use before the table grows (by half).
const MAX_LOAD_NUM: usize = 4;
const MAX_LOAD_DEN: usize = 5;

/// One entry: the pseudonym, the status version, the time (seconds, saturated to u32)
/// and the color. `overflow` belongs to the bucket and is kept in its first slot.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Slot {
    pub key: [u8; 16],
    pub ver: u64,
    pub at: u32,
    pub color: u8,
    overflow: u8,
    _pad: [u8; 2],
}

const EMPTY_SLOT: Slot = Slot {
    key: [0; 16],
    ver: 0,
    at: 0,
    color: EMPTY,
    overflow: 0,
    _pad: [0; 2],
};

/// A cache line: two slots.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket([Slot; 2]);

const EMPTY_BUCKET: Bucket = Bucket([EMPTY_SLOT; 2]);

/// The table of one shard.
pub(crate) struct Table {
    buckets: Vec<Bucket>,
    len: usize,
}

impl Table {
    /// An empty table sized for `n` entries without growing.
    pub fn with_capacity(n: usize) -> Self {
        let buckets = if n == 0 {
            0
        } else {
            (n * MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM * 2).max(1)
        };
        Table {
            buckets: vec![EMPTY_BUCKET; buckets],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, key: &[u8; 16]) -> usize {
        let mut h = [0u8; 8];
        h.copy_from_slice(&key[..8]);
        // Maps the hash onto 0..n without a division ("fastrange").
        ((u128::from(u64::from_le_bytes(h)) * self.buckets.len() as u128) >> 64) as usize
    }

    /// The slot holding `key`, if any.
    #[inline]
    pub fn get(&self, key: &[u8; 16]) -> Option<&Slot> {
        let n = self.buckets.len();
        if n == 0 {
            return None;
        }
        let mut b = self.home(key);
        for _ in 0..n {
            let bucket = &self.buckets[b].0;
            for s in bucket {
                if s.color != EMPTY && s.key == *key {
                    return Some(s);
                }
            }
            if bucket[0].overflow == 0 {
                return None;
            }
            b += 1;
            if b == n {
                b = 0;
            }
        }
        None
    }

    /// The slot holding `key` for update, if any.
    fn get_mut(&mut self, key: &[u8; 16]) -> Option<&mut Slot> {
        let n = self.buckets.len();
        if n == 0 {
            return None;
        }
        let mut b = self.home(key);
        for _ in 0..n {
            let pos = self.buckets[b]
                .0
                .iter()
                .position(|s| s.color != EMPTY && s.key == *key);
            if let Some(i) = pos {
                return Some(&mut self.buckets[b].0[i]);
            }
            if self.buckets[b].0[0].overflow == 0 {
                return None;
            }
            b = (b + 1) % n;
        }
        None
    }

    /// Inserts or updates through `f`, which sees the current slot (if any) and returns
    /// the new one, or `None` to leave things as they are. Returns whether it wrote.
    pub fn upsert(
        &mut self,
        key: [u8; 16],
        f: impl FnOnce(Option<&Slot>) -> Option<(u64, u32, u8)>,
    ) -> bool {
        if let Some(slot) = self.get_mut(&key) {
            return match f(Some(slot)) {
                Some((ver, at, color)) => {
                    slot.ver = ver;
                    slot.at = at;
                    slot.color = color;
                    true
                }
                None => false,
            };
        }
        let Some((ver, at, color)) = f(None) else {
            return false;
        };
        if (self.len + 1) * MAX_LOAD_DEN > self.buckets.len() * 2 * MAX_LOAD_NUM {
            self.grow();
        }
        self.place(key, ver, at, color);
        true
    }

    /// Puts a new key in the first free slot from its home, marking full buckets passed.
    fn place(&mut self, key: [u8; 16], ver: u64, at: u32, color: u8) {
        let n = self.buckets.len();
        let mut b = self.home(&key);
        loop {
            let bucket = &mut self.buckets[b].0;
            if let Some(i) = bucket.iter().position(|s| s.color == EMPTY) {
                let s = &mut bucket[i];
                s.key = key;
                s.ver = ver;
                s.at = at;
                s.color = color;
                self.len += 1;
                return;
            }
            bucket[0].overflow = 1;
            b = (b + 1) % n;
        }
    }

    /// Makes room for `n` entries in all without growing again.
    pub fn reserve(&mut self, n: usize) {
        let want = (n * MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM * 2);
        if want > self.buckets.len() {
            self.rebuild(want, |_| true);
        }
    }

    fn grow(&mut self) {
        let target = (self.buckets.len() * 3 / 2).max(4);
        self.rebuild(target, |_| true);
    }

    /// Rebuilds into `buckets` buckets, keeping the entries `keep` accepts.
    fn rebuild(&mut self, buckets: usize, mut keep: impl FnMut(&Slot) -> bool) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; buckets.max(1)]);
        self.len = 0;
        for s in old.iter().flat_map(|b| b.0.iter()) {
            if s.color != EMPTY && keep(s) {
                self.place(s.key, s.ver, s.at, s.color);
            }
        }
    }

    /// Drops the entries `drop` selects; returns how many. Rebuilds only if any go.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Slot) -> bool) -> usize {
        let doomed = self.iter().filter(|s| drop(s)).count();
        if doomed > 0 {
            let keep_len = self.len - doomed;
            let buckets = (keep_len * MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM * 2).max(1);
            self.rebuild(buckets.max(self.buckets.len() / 2), |s| !drop(s));
        }
        doomed
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.buckets
            .iter()
            .flat_map(|b| b.0.iter())
            .filter(|s| s.color != EMPTY)
    }

    /// Bytes held by the table.
    pub fn allocated_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(i: u64, salt: u64) -> [u8; 16] {
        // Spread like an HMAC output, with some forced home collisions (same first bytes).
        let mut k = [0u8; 16];
        let h = (i / 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        k[..8].copy_from_slice(&h.to_le_bytes());
        k[8..].copy_from_slice(&i.to_le_bytes());
        k
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
    }

    /// Random inserts, version updates, lookups of present and absent keys, and
    /// removals, checked against a HashMap.
    #[test]
    fn behaves_like_a_map() {
        let mut t = Table::with_capacity(0);
        let mut model: HashMap<[u8; 16], (u64, u8)> = HashMap::new();
        let mut x: u64 = 12345;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40_000u64 {
            let k = key(rnd() % 5000, 7);
            let ver = rnd() % 10;
            let color = (rnd() % 3) as u8;
            let wrote = t.upsert(k, |cur| match cur {
                Some(s) if s.ver >= ver => None,
                _ => Some((ver, round as u32, color)),
            });
            let m = model.get(&k).copied();
            let expect = m.is_none_or(|(v, _)| ver > v);
            assert_eq!(wrote, expect);
            if expect {
                model.insert(k, (ver, color));
            }
            if round % 5000 == 4999 {
                let cut = rnd() % 3;
                let removed = t.remove_where(|s| u64::from(s.color) == cut);
                let before = model.len();
                model.retain(|_, (_, c)| u64::from(*c) != cut);
                assert_eq!(removed, before - model.len());
            }
            assert_eq!(t.len(), model.len());
        }
        for i in 0..6000 {
            for salt in [7, 8] {
                let k = key(i, salt);
                let got = t.get(&k).map(|s| (s.ver, s.color));
                assert_eq!(got, model.get(&k).copied());
            }
        }
        assert_eq!(t.iter().count(), model.len());
    }

    #[test]
    fn wraps_around_the_end() {
        let mut t = Table::with_capacity(8);
        let n = t.buckets.len();
        // Keys whose home is the last bucket: they must spill over to bucket 0.
        let mut placed = Vec::new();
        for i in 0..5u64 {
            let mut k = [0xffu8; 16];
            k[15] = i as u8;
            t.upsert(k, |_| Some((1, 0, 0)));
            placed.push(k);
        }
        assert_eq!(t.buckets.len(), n, "no growth in this test");
        for k in &placed {
            assert!(t.get(k).is_some());
        }
    }
}
