//! The signature cache: remembers which token bytes verified under which key, so a code
//! scanned again (a commuter at each gate of a trip) skips the signature work, and only
//! that. Time, revocations, status and policy are checked on every call.
//!
//! Keyed by SHA-256 over exactly what the signature covers and the signature itself
//! (the protected header, the payload, and the signature with an ES256 `s` in its low
//! form), not over the COSE bytes as sent: the bytes also hold parts no signature covers
//! (the unprotected map, the optional tag 18, the encoding of each length), so keying on
//! them would let one genuine code be sent in endless byte-distinct forms, each a miss
//! costing a full verification and evicting an honest entry. A forged token would need a
//! second preimage of a genuine token's key to be taken for it. The value is the serial
//! of the key that verified it, so a replaced key invalidates its entries. quick_cache
//! was kept over moka after measuring both (`benches/README.md`).

use ring::digest::{digest, Context, SHA256};

use crate::cose::{Alg, Sign1};

/// The order n of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `s` or `n - s`, whichever is smaller: an ECDSA signature `(r, s)` and its twin
/// `(r, n - s)` verify alike, so they share one cache entry.
fn low_s(s: &[u8; 32]) -> [u8; 32] {
    // n / 2 compared by computing n - s and keeping the smaller of the two.
    let mut twin = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        twin[i] = d.rem_euclid(256) as u8;
    }
    if borrow == 0 && twin < *s {
        twin
    } else {
        *s
    }
}

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

    /// The digest of arbitrary bytes (benchmarks and tests).
    #[inline]
    pub fn digest(bytes: &[u8]) -> Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, bytes).as_ref());
        out
    }

    /// The cache key of a token: SHA-256 over the protected header, the payload (each
    /// with its length) and the signature, with an ES256 `s` in its low form. The same
    /// for every encoding of one signed token.
    pub fn key(cose: &Sign1<'_>) -> Digest {
        let mut ctx = Context::new(&SHA256);
        for part in [cose.protected, cose.payload] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let sig = cose.signature;
        ctx.update(&sig[..32]);
        match cose.alg {
            Alg::Es256 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&sig[32..]);
                ctx.update(&low_s(&s));
            }
            Alg::EdDsa => ctx.update(&sig[32..]),
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
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

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Hits and misses so far, for the server's metrics.
    pub fn hits_misses(&self) -> (u64, u64) {
        (self.inner.hits(), self.inner.misses())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_s_keeps_the_smaller_twin() {
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(low_s(&one), one);
        // n - 1 is high; its twin is 1.
        let mut n_minus_1 = P256_N;
        n_minus_1[31] -= 1;
        assert_eq!(low_s(&n_minus_1), one);
        // An `s` at or above n (not a valid scalar) is kept as it is.
        assert_eq!(low_s(&[0xff; 32]), [0xff; 32]);
    }
}
