//! Step 4: the token's signature, checked against its trust-list key.
//!
//! The result is a proof value, [`SignatureValid`], that only this crate can build: the
//! later steps take it as an argument, so no code path reaches the status or policy
//! steps with a token whose signature was not checked (or found in the signature cache,
//! which only ever holds results this module produced).

use ed25519_dalek::Signature;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

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

    pub fn token(&self) -> &'t Token<'t> {
        self.token
    }

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

/// Verifies `sig` over `msg`: Ed25519 strictly (S below the group order, R not of
/// small order), ES256 per FIPS 186-4 on the raw `r||s` (a high S is valid).
pub fn verify_raw(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> Result<(), BadSignature> {
    match key {
        PublicKey::Ed25519(vk) => vk
            .verify_strict(msg, &Signature::from_bytes(sig))
            .map_err(|_| BadSignature),
        PublicKey::Es256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point[..])
            .verify(msg, sig)
            .map_err(|_| BadSignature),
    }
}
