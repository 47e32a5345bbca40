//! The signature cache: remembers which token bytes verified under which key, so a code
//! scanned again (a commuter at each gate of a trip) skips the signature work, and only
//! that. Time, revocations, status and policy are checked on every call.
//!
//! Keyed by SHA-256 of the COSE bytes: a forged token would need a second preimage of a
//! genuine token's digest to be taken for it. The value is the serial of the key that
//! verified it, so a replaced key invalidates its entries. quick_cache was kept over moka
//! after measuring both (`benches/README.md`).

use ring::digest::{digest, SHA256};

/// A token's digest.
pub type Digest = [u8; 32];

/// Bounded map from token digest to the serial of the key that verified it.
pub struct SigCache {
    inner: quick_cache::sync::Cache<Digest, u64>,
}

impl SigCache {
    /// A cache holding at most `capacity` tokens (about 100 bytes each, measured).
    pub fn new(capacity: usize) -> Self {
        SigCache {
            inner: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// The digest of COSE bytes.
    #[inline]
    pub fn digest(cose: &[u8]) -> Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, cose).as_ref());
        out
    }

    /// Whether these bytes verified under the key with `serial`.
    #[inline]
    pub fn hit(&self, d: &Digest, serial: u64) -> bool {
        self.inner.get(d) == Some(serial)
    }

    /// Records a verification.
    #[inline]
    pub fn record(&self, d: Digest, serial: u64) {
        self.inner.insert(d, serial);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Hits and misses so far, for the server's metrics.
    pub fn hits_misses(&self) -> (u64, u64) {
        (self.inner.hits(), self.inner.misses())
    }
}
