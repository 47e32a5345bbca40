//! The issuing authority's side, in memory: signing codes and root documents. Used by
//! the `gateway` issuing subcommands, the load tester and tests, so that what they make
//! is decoded by the very code that checks it. No I/O here (ES256 signing draws
//! from the system random source, as ECDSA must).

use ed25519_dalek::Signer;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use gateway_core::b64;
use gateway_core::cose::{build_sign1, Alg};
use gateway_core::token::{encode_text, NewClaims};
use gateway_core::trust::{format_time, TrustEntry};

/// A private key of one of the two algorithms.
pub enum SigningKey {
    /// An Ed25519 key (EdDSA).
    Ed25519(ed25519_dalek::SigningKey),
    /// A P-256 key (ES256), with the PKCS#8 document it was read from.
    Es256 {
        /// The key pair.
        pair: EcdsaKeyPair,
        /// Its PKCS#8 form, as the key file holds it.
        pkcs8: Vec<u8>,
    },
}

/// Why a private key could not be loaded or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The bytes are not a key of the algorithm.
    #[error("private key is not valid for its algorithm")]
    BadKey,
    /// The system's random source failed.
    #[error("random source failed")]
    Random,
}

impl SigningKey {
    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519(seed: &[u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A P-256 key from PKCS#8 DER.
    pub fn es256(pkcs8: &[u8]) -> Result<Self, MintError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| MintError::BadKey)?;
        Ok(SigningKey::Es256 {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// A new random key.
    pub fn generate(alg: Alg) -> Result<Self, MintError> {
        let rng = SystemRandom::new();
        match alg {
            Alg::EdDsa => {
                let mut seed = [0u8; 32];
                ring::rand::SecureRandom::fill(&rng, &mut seed).map_err(|_| MintError::Random)?;
                Ok(Self::ed25519(&seed))
            }
            Alg::Es256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| MintError::Random)?;
                Self::es256(doc.as_ref())
            }
        }
    }

    /// The key's algorithm.
    pub fn alg(&self) -> Alg {
        match self {
            SigningKey::Ed25519(_) => Alg::EdDsa,
            SigningKey::Es256 { .. } => Alg::Es256,
        }
    }

    /// The private key's storable form: the Ed25519 seed or the P-256 PKCS#8 DER.
    pub fn secret_bytes(&self) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.to_bytes().to_vec(),
            SigningKey::Es256 { pkcs8, .. } => pkcs8.clone(),
        }
    }

    /// The public key as the trust list writes it (raw Ed25519, uncompressed SEC1).
    pub fn public_bytes(&self) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
            SigningKey::Es256 { pair, .. } => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `msg`: 64 bytes, `R||S` or raw `r||s`.
    pub fn sign(&self, msg: &[u8]) -> Result<[u8; 64], MintError> {
        match self {
            SigningKey::Ed25519(k) => Ok(k.sign(msg).to_bytes()),
            SigningKey::Es256 { pair, .. } => {
                let sig = pair
                    .sign(&SystemRandom::new(), msg)
                    .map_err(|_| MintError::Random)?;
                sig.as_ref().try_into().map_err(|_| MintError::BadKey)
            }
        }
    }

    /// A COSE_Sign1 over `payload` under `kid`.
    pub fn sign1(&self, kid: &[u8], payload: &[u8]) -> Result<Vec<u8>, MintError> {
        self.sign1_typed(kid, None, payload)
    }

    /// A COSE_Sign1 over `payload` under `kid`, with `typ` in its protected header when
    /// given.
    pub fn sign1_typed(
        &self,
        kid: &[u8],
        typ: Option<&str>,
        payload: &[u8],
    ) -> Result<Vec<u8>, MintError> {
        let mut err = None;
        let bytes = gateway_core::cose::build_sign1_typed(self.alg(), kid, typ, payload, |m| {
            self.sign(m).unwrap_or_else(|e| {
                err = Some(e);
                [0; 64]
            })
        });
        match err {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }
}

/// An issuer: a key, its `kid` and the issuer name it signs for.
pub struct Issuer {
    /// The key identifier codes carry (`token.md`).
    pub kid: Vec<u8>,
    /// The issuer name it signs for (`iss`).
    pub issuer: String,
    /// The private key.
    pub key: SigningKey,
}

impl Issuer {
    /// Signs a status list (`offline.md`): the COSE bytes as a feed event carries them.
    pub fn sign_status_list(
        &self,
        list: &gateway_core::offline::list::NewList<'_>,
    ) -> Result<Vec<u8>, MintError> {
        self.sign_typed(gateway_core::offline::list::TYP_LIST, &list.encode(6))
    }

    /// Signs a status list update.
    pub fn sign_status_list_update(
        &self,
        update: &gateway_core::offline::list::NewUpdate<'_>,
    ) -> Result<Vec<u8>, MintError> {
        self.sign_typed(gateway_core::offline::list::TYP_UPDATE, &update.encode(6))
    }

    fn sign_typed(&self, typ: &str, payload: &[u8]) -> Result<Vec<u8>, MintError> {
        self.key.sign1_typed(&self.kid, Some(typ), payload)
    }

    /// Mints a code's text form.
    pub fn mint(&self, claims: &NewClaims) -> Result<String, MintError> {
        Ok(encode_text(&self.key.sign1(&self.kid, &claims.encode())?))
    }

    /// A trust list holding only this key, valid for `not_before..=not_after` (tests,
    /// benchmarks).
    pub fn trust_list(&self, not_before: i64, not_after: i64) -> gateway_core::trust::TrustList {
        let e = self.trust_entry(not_before, not_after);
        let json = serde_json::json!({"keys": [{"kid": e.kid, "issuer": e.issuer, "alg": e.alg,
            "public_key": e.public_key, "not_before": e.not_before, "not_after": e.not_after}]});
        gateway_core::trust::TrustList::from_json(json.to_string().as_bytes())
            .map(|(t, _)| t)
            .unwrap_or_default()
    }

    /// This key's trust-list entry, valid for tokens issued in `not_before..=not_after`.
    pub fn trust_entry(&self, not_before: i64, not_after: i64) -> TrustEntry {
        TrustEntry {
            kid: b64::encode(&self.kid),
            issuer: self.issuer.clone(),
            alg: self.key.alg().name().to_owned(),
            public_key: b64::encode(&self.key.public_bytes()),
            not_before: format_time(not_before),
            not_after: format_time(not_after),
        }
    }
}

/// The provincial root key's private half: signs `key` and `policy` documents.
pub struct RootSigner(ed25519_dalek::SigningKey);

impl RootSigner {
    /// The root key of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        RootSigner(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The seed, as `root-keygen` writes it.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key's file form (raw, base64url).
    pub fn public_b64(&self) -> String {
        b64::encode(self.0.verifying_key().as_bytes())
    }

    /// Signs a document: COSE_Sign1 (EdDSA), base64url, as the feed and files carry it.
    pub fn sign_doc(&self, payload: &[u8]) -> String {
        let bytes = build_sign1(Alg::EdDsa, b"root", payload, |m| self.0.sign(m).to_bytes());
        b64::encode(&bytes)
    }

    /// A `key` event adding `entry`.
    pub fn key_add_event(&self, entry: &TrustEntry) -> String {
        self.key_add_event_seq(entry, None)
    }

    /// A `key` event adding `entry`, with the document's `seq` when given (a re-keyed kid
    /// takes a higher one, so older documents cannot roll it back).
    pub fn key_add_event_seq(&self, entry: &TrustEntry, seq: Option<u64>) -> String {
        let mut doc = serde_json::json!({
            "action": "add", "kid": entry.kid, "issuer": entry.issuer, "alg": entry.alg,
            "public_key": entry.public_key, "not_before": entry.not_before,
            "not_after": entry.not_after,
        });
        if let Some(s) = seq {
            doc["seq"] = s.into();
        }
        let signed = self.sign_doc(doc.to_string().as_bytes());
        doc = serde_json::json!({"type": "key", "signed": signed});
        doc.to_string()
    }

    /// A `key` event revoking `kid` (base64url).
    pub fn key_revoke_event(&self, kid_b64: &str) -> String {
        let doc = serde_json::json!({"action": "revoke", "kid": kid_b64});
        let signed = self.sign_doc(doc.to_string().as_bytes());
        serde_json::json!({"type": "key", "signed": signed}).to_string()
    }

    /// A `policy` event carrying `policy_json`.
    pub fn policy_event(&self, policy_json: &str) -> String {
        let signed = self.sign_doc(policy_json.as_bytes());
        serde_json::json!({"type": "policy", "signed": signed}).to_string()
    }
}
