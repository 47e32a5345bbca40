//! Step 4: the token's signature, checked against its trust-list key.
//!
//! The result is a proof value, [`SignatureValid`], that only this crate can build: the
//! later steps take it as an argument, so no code path reaches the status or policy
//! steps with a token whose signature was not checked (or found in the signature cache,
//! which only ever holds results this module produced).

use ed25519_dalek::Signature;
// ES256 with aws-lc-rs and a key parsed once at load, chosen by measurement
// (`benches/benches/es256.rs`; 2026-12-02, AMD EPYC with AVX-512, one verification of a
// vector code): aws-lc-rs 33.4 µs with a parsed key (34.4 parsing it each time), ring
// 36.3, OpenSSL 3.0 (HAProxy's) 42.9, p256 (pure Rust) 155. Cold ES256 decisions on one
// core: 30,000/s against ring's 27,400; over HTTP, against HAProxy (`benches/http/
// haproxy.sh`, three rounds each): 1.42 × against ring's 1.39 ×. For that, the aws-lc C
// library is built; ring stays the TLS stack's provider.

use crate::token::Token;
use crate::trust::{PublicKey, TrustedKey};

/// Proof that `token`'s signature verifies under `key`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureValid<'t> {
    token: &'t Token<'t>,
    key: &'t TrustedKey,
}

impl<'t> SignatureValid<'t> {
    /// Only for this crate: after a verification, or a cache hit recorded after one.
    pub(crate) fn new(token: &'t Token<'t>, key: &'t TrustedKey) -> Self {
        SignatureValid { token, key }
    }

    /// The token whose signature verified.
    pub fn token(&self) -> &'t Token<'t> {
        self.token
    }

    /// The key it verified with.
    pub fn key(&self) -> &'t TrustedKey {
        self.key
    }
}

/// The signature did not verify (`bad_signature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad signature")]
pub struct BadSignature;

/// Verifies `token` under `key` (whose alg the caller has matched to the header).
/// `scratch` receives the signed bytes, so the caller can reuse one buffer.
pub fn verify<'t>(
    token: &'t Token<'t>,
    key: &'t TrustedKey,
    scratch: &mut Vec<u8>,
) -> Result<SignatureValid<'t>, BadSignature> {
    token.cose.signed_bytes_into(scratch);
    verify_raw(&key.public_key, scratch, token.cose.signature)?;
    Ok(SignatureValid::new(token, key))
}

/// The y-coordinates (little-endian, sign bit cleared) of the Ed25519 points of small
/// order: 0 (order 4), 1 (the identity), the two of order 8, and p-1 (order 2); plus p
/// and p+1, non-canonical forms of 0 and 1. The list libsodium checks in `has_small_order`.
const SMALL_ORDER_Y: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Whether an encoded point is one of small order, whatever its sign bit.
pub fn is_small_order_encoding(p: &[u8; 32]) -> bool {
    SMALL_ORDER_Y
        .iter()
        .any(|y| y[..31] == p[..31] && y[31] == p[31] & 0x7f)
}

/// Verifies `sig` over `msg`: Ed25519 strictly (S below the group order, R not of
/// small order), ES256 per FIPS 186-4 on the raw `r||s` (a high S is valid).
///
/// Ed25519: dalek's `verify` already refuses S at or above the group order and compares
/// the encoding of the recomputed R with the one sent (so a non-canonical R never
/// passes). What `verify_strict` adds is a decompression of R to test its order, about
/// 8 µs; testing R's encoding against the seven small-order encodings gives the same
/// answer for nothing. The key's own order was checked when it was loaded. The two are
/// compared on every vector and on random inputs in the tests.
pub fn verify_raw(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> Result<(), BadSignature> {
    match key {
        PublicKey::Ed25519(vk) => {
            let mut r = [0u8; 32];
            r.copy_from_slice(&sig[..32]);
            if is_small_order_encoding(&r) {
                return Err(BadSignature);
            }
            ed25519_dalek::Verifier::verify(vk, msg, &Signature::from_bytes(sig))
                .map_err(|_| BadSignature)
        }
        PublicKey::Es256(key) => key.parsed().verify_sig(msg, sig).map_err(|_| BadSignature),
    }
}

/// Verifies many Ed25519 signatures at once (ed25519-dalek's batch equation with random
/// coefficients), each entry `(message, signature, key)`; returns one verdict per entry.
/// Small-order R is refused first, one by one, as [`verify_raw`] does. If the batch
/// equation fails, the batch is bisected: a half that passes is settled at once, a half
/// known to hold a forgery is split again without being checked whole, and groups of
/// [`BISECT_SINGLES`] or fewer are verified one by one. One forgery among n signatures
/// costs about two batch checks of n (against n single verifications, roughly twice as
/// dear, if the batch were given up), and only the forgery fails.
pub fn verify_ed25519_batch(
    items: &[(&[u8], &[u8; 64], &ed25519_dalek::VerifyingKey)],
) -> Vec<bool> {
    let mut ok: Vec<bool> = items
        .iter()
        .map(|(_, sig, _)| {
            let mut r = [0u8; 32];
            r.copy_from_slice(&sig[..32]);
            !is_small_order_encoding(&r)
        })
        .collect();
    let idx: Vec<usize> = (0..items.len()).filter(|&i| ok[i]).collect();
    if idx.is_empty() {
        return ok;
    }
    let mut b = Bisect {
        items,
        ok: &mut ok,
        checks: 0,
    };
    b.resolve(&idx, false);
    ok
}

/// Groups this small are verified one by one rather than split further.
pub const BISECT_SINGLES: usize = 2;

struct Bisect<'a, 'b> {
    items: &'a [(&'a [u8], &'a [u8; 64], &'a ed25519_dalek::VerifyingKey)],
    ok: &'b mut [bool],
    /// Batch equations and single verifications done (for the tests).
    checks: usize,
}

impl Bisect<'_, '_> {
    fn batch_ok(&mut self, idx: &[usize]) -> bool {
        self.checks += 1;
        let msgs: Vec<&[u8]> = idx.iter().map(|&i| self.items[i].0).collect();
        let sigs: Vec<Signature> = idx
            .iter()
            .map(|&i| Signature::from_bytes(self.items[i].1))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> =
            idx.iter().map(|&i| *self.items[i].2).collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    }

    /// Settles every entry of `idx`; `known_bad` when `idx` as a whole is known to fail.
    /// Returns whether all of them verified.
    fn resolve(&mut self, idx: &[usize], known_bad: bool) -> bool {
        if idx.len() <= BISECT_SINGLES {
            let mut all = true;
            for &i in idx {
                self.checks += 1;
                let (msg, sig, key) = self.items[i];
                let good =
                    ed25519_dalek::Verifier::verify(key, msg, &Signature::from_bytes(sig)).is_ok();
                self.ok[i] = good;
                all &= good;
            }
            return all;
        }
        if !known_bad && self.batch_ok(idx) {
            return true;
        }
        let (left, right) = idx.split_at(idx.len() / 2);
        if self.resolve(left, false) {
            // The whole failed and the left half passed: the fault is on the right.
            self.resolve(right, true);
            false
        } else {
            self.resolve(right, false);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

    /// The blacklist names exactly the eight small-order points: every encoding on it
    /// that decodes is of small order, and eight distinct points are covered.
    #[test]
    fn small_order_list_is_exact() {
        let mut points = Vec::new();
        for y in SMALL_ORDER_Y {
            for sign in [0u8, 0x80] {
                let mut enc = y;
                enc[31] |= sign;
                if let Ok(k) = VerifyingKey::from_bytes(&enc) {
                    assert!(k.is_weak(), "{enc:02x?} is not of small order");
                    let canonical = k.to_edwards().compress().to_bytes();
                    if !points.contains(&canonical) {
                        points.push(canonical);
                    }
                }
            }
        }
        // One more check from the other side: 8·P = O for exactly these points.
        assert_eq!(points.len(), 8, "{points:02x?}");
    }

    #[test]
    fn batch_isolates_a_forgery() {
        let keys: Vec<SigningKey> = (1..=8u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 40]).collect();
        let mut sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let run = |sigs: &[[u8; 64]]| {
            let items: Vec<(&[u8], &[u8; 64], &VerifyingKey)> = (0..8)
                .map(|i| (msgs[i].as_slice(), &sigs[i], &vks[i]))
                .collect();
            verify_ed25519_batch(&items)
        };
        assert_eq!(run(&sigs), vec![true; 8]);
        sigs[3][40] ^= 1;
        sigs[6][..32].copy_from_slice(&SMALL_ORDER_Y[1]);
        let got = run(&sigs);
        assert_eq!(got, [true, true, true, false, true, true, false, true]);
    }

    /// One forgery among 64: settled by bisection in far fewer checks than 64 singles,
    /// and only the forgery fails, wherever it sits.
    #[test]
    fn bisection_finds_one_forgery_cheaply() {
        let keys: Vec<SigningKey> = (0..64u8)
            .map(|i| SigningKey::from_bytes(&[i.wrapping_add(1); 32]))
            .collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 40]).collect();
        for bad in [0usize, 17, 63] {
            let mut sigs: Vec<[u8; 64]> = keys
                .iter()
                .zip(&msgs)
                .map(|(k, m)| k.sign(m).to_bytes())
                .collect();
            sigs[bad][50] ^= 1;
            let items: Vec<(&[u8], &[u8; 64], &VerifyingKey)> = (0..64)
                .map(|i| (msgs[i].as_slice(), &sigs[i], &vks[i]))
                .collect();
            let mut ok = vec![true; 64];
            let mut b = Bisect {
                items: &items,
                ok: &mut ok,
                checks: 0,
            };
            let idx: Vec<usize> = (0..64).collect();
            assert!(!b.resolve(&idx, false));
            let checks = b.checks;
            let want: Vec<bool> = (0..64).map(|i| i != bad).collect();
            assert_eq!(ok, want, "forgery at {bad}");
            // log2(64/2) levels of one or two checks each, plus two singles.
            assert!(checks <= 14, "{checks} checks for one forgery at {bad}");
        }
    }

    /// Same verdict as dalek's `verify_strict` on valid, tampered and small-order inputs.
    #[test]
    fn agrees_with_verify_strict() {
        let sk = SigningKey::from_bytes(&[5; 32]);
        let vk = sk.verifying_key();
        let msg = b"signed bytes";
        let good = sk.sign(msg).to_bytes();
        let mut cases = vec![good];
        for i in [0usize, 5, 31, 32, 40, 63] {
            let mut s = good;
            s[i] ^= 4;
            cases.push(s);
        }
        for y in SMALL_ORDER_Y {
            let mut s = good;
            s[..32].copy_from_slice(&y);
            cases.push(s);
        }
        for sig in cases {
            let strict = vk.verify_strict(msg, &Signature::from_bytes(&sig)).is_ok();
            let ours = verify_raw(&PublicKey::Ed25519(vk), msg, &sig).is_ok();
            assert_eq!(strict, ours, "{sig:02x?}");
        }
    }
}
