//! The trust list: for each `kid`, the issuer it signs for, its algorithm, its public key
//! and its validity window (`token.md`, "Trust"); and the provincial root key that signs
//! the `key` and `policy` documents of the feed.
//!
//! Keys are validated when loaded: an Ed25519 key must decompress and not be of small
//! order, an ES256 key must be an uncompressed point on P-256. A refused key is logged
//! with its `kid` and left out; tokens under it then get `unknown_key`.

pub mod sigcache;
pub mod signature;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::cose::{Alg, Sign1};
use crate::status::id::ShortId;

/// A key identifier.
pub type Kid = ShortId;

/// Longest issuer name, as for the `iss` claim.
pub const MAX_ISSUER_LEN: usize = 32;

/// One entry of `trust.json` as written (all text).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct TrustEntry {
    /// The key id, base64url.
    pub kid: String,
    /// The issuer it signs for.
    pub issuer: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// The public key, base64url.
    pub public_key: String,
    /// From when it may issue (RFC 3339).
    pub not_before: String,
    /// Until when it may issue (RFC 3339).
    pub not_after: String,
}

#[derive(Deserialize)]
struct TrustFile {
    keys: Vec<TrustEntry>,
}

/// Why a trust file as a whole is refused (a fatal configuration error).
#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    #[error("not a trust list ({{\"keys\": [...]}}): {0}")]
    /// Not JSON of the trust list's shape.
    Shape(#[from] serde_json::Error),
}

/// Why one key is refused (the rest still load).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("kid is not base64url of 1 to 16 bytes")]
    /// The `kid` is not 1 to 16 bytes of base64url.
    Kid,
    #[error("issuer must be 1 to 32 bytes")]
    /// The issuer name is empty.
    Issuer,
    #[error("alg must be EdDSA or ES256")]
    /// The algorithm is not `EdDSA` or `ES256`.
    Alg,
    #[error("not_before/not_after must be RFC 3339 times with not_before <= not_after")]
    /// The validity window is not two RFC 3339 times in order.
    Window,
    #[error("public key is not base64url")]
    /// The public key is not base64url.
    Encoding,
    #[error("Ed25519 key is not 32 bytes or not a valid point")]
    /// Not an Ed25519 point.
    EdPoint,
    #[error("Ed25519 key is of small order")]
    /// An Ed25519 point of small order, or with a torsion part.
    EdSmallOrder,
    /// A point with a small-order component: single and batch verification may then
    /// disagree on one signature.
    #[error("Ed25519 key is not torsion-free (mixed order)")]
    EdMixedOrder,
    #[error("ES256 key is not a 65-byte uncompressed SEC1 point")]
    /// Not a 65-byte uncompressed SEC1 point.
    EsEncoding,
    #[error("ES256 key is not a point on P-256")]
    /// Not a point of P-256.
    EsPoint,
}

/// The verifying half of a trusted key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// Decompressed once at load.
    Ed25519(VerifyingKey),
    /// The uncompressed SEC1 point, checked on the curve and parsed once at load.
    Es256(Box<Es256Key>),
}

/// A key of the trust list, validated.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The key id.
    pub kid: Kid,
    /// The issuer it signs for.
    pub issuer: String,
    /// Its algorithm.
    pub alg: Alg,
    /// The public key.
    pub public_key: PublicKey,
    /// Inclusive bounds on the token's `iat`, seconds since the epoch.
    pub not_before: i64,
    /// Until when it may issue (seconds since the epoch).
    pub not_after: i64,
    /// Unique per loaded key, so cached signature results never outlive a replaced key.
    pub serial: u64,
    /// The `seq` of the root-signed `key` document that added it (none for keys of the
    /// configured trust list and for documents without one).
    pub seq: Option<u64>,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Parses an RFC 3339 time into seconds since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Formats seconds since the epoch as RFC 3339 (UTC).
pub fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "invalid".to_owned())
}

impl TrustedKey {
    /// The entry this key reads back from (for snapshots).
    pub fn to_entry(&self) -> TrustEntry {
        let raw: Vec<u8> = match &self.public_key {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::Es256(p) => p.point().to_vec(),
        };
        TrustEntry {
            kid: b64::encode(self.kid.as_bytes()),
            issuer: self.issuer.clone(),
            alg: self.alg.name().to_owned(),
            public_key: b64::encode(&raw),
            not_before: format_time(self.not_before),
            not_after: format_time(self.not_after),
        }
    }

    /// Validates one entry.
    pub fn from_entry(e: &TrustEntry) -> Result<TrustedKey, KeyError> {
        let kid = b64::decode(&e.kid)
            .and_then(|b| ShortId::new(&b))
            .ok_or(KeyError::Kid)?;
        if e.issuer.is_empty() || e.issuer.len() > MAX_ISSUER_LEN {
            return Err(KeyError::Issuer);
        }
        let alg = Alg::from_name(&e.alg).ok_or(KeyError::Alg)?;
        let (nb, na) = match (parse_time(&e.not_before), parse_time(&e.not_after)) {
            (Some(a), Some(b)) if a <= b => (a, b),
            _ => return Err(KeyError::Window),
        };
        let raw = b64::decode(&e.public_key).ok_or(KeyError::Encoding)?;
        let public_key = match alg {
            Alg::EdDsa => PublicKey::Ed25519(ed25519_key(&raw)?),
            Alg::Es256 => PublicKey::Es256(Box::new(es256_key(&raw)?)),
        };
        Ok(TrustedKey {
            kid,
            issuer: e.issuer.clone(),
            alg,
            public_key,
            not_before: nb,
            not_after: na,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            seq: None,
        })
    }
}

/// A valid Ed25519 public key in the prime-order subgroup: not of small order, and
/// torsion-free (a mixed-order key can make single and batch verification disagree).
pub fn ed25519_key(raw: &[u8]) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::EdPoint)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::EdPoint)?;
    if key.is_weak() {
        return Err(KeyError::EdSmallOrder);
    }
    if !key.to_edwards().is_torsion_free() {
        return Err(KeyError::EdMixedOrder);
    }
    Ok(key)
}

/// A P-256 key of the trust list: its uncompressed SEC1 point, parsed (and so checked on
/// the curve) once, at load, for the verifications (`signature.rs`).
#[derive(Debug, Clone)]
pub struct Es256Key {
    point: [u8; 65],
    parsed: ParsedPublicKey,
}

impl Es256Key {
    /// The uncompressed point, as the trust list carries it.
    pub fn point(&self) -> &[u8; 65] {
        &self.point
    }

    /// The key parsed for verification.
    pub fn parsed(&self) -> &ParsedPublicKey {
        &self.parsed
    }
}

/// A valid uncompressed P-256 point.
pub fn es256_key(raw: &[u8]) -> Result<Es256Key, KeyError> {
    let point: [u8; 65] = raw.try_into().map_err(|_| KeyError::EsEncoding)?;
    if point[0] != 0x04 {
        return Err(KeyError::EsEncoding);
    }
    let parsed =
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| KeyError::EsPoint)?;
    Ok(Es256Key { point, parsed })
}

/// A key left out of the list, for the caller's log and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedKey {
    /// The kid as written in the file (it may not even decode).
    pub kid: String,
    /// Why it was refused.
    pub error: KeyError,
}

/// The trust list in force: replaced as a whole (never edited in place) when a `key`
/// event arrives, so readers holding the old one are never disturbed.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    keys: HashMap<Kid, Arc<TrustedKey>>,
    revoked: HashSet<Kid>,
}

impl TrustList {
    /// Loads `trust.json`. A file of the wrong shape is an error; a bad key is refused
    /// with a log line naming its `kid`, and returned with the others that were.
    pub fn from_json(bytes: &[u8]) -> Result<(TrustList, Vec<RefusedKey>), TrustFileError> {
        let file: TrustFile = serde_json::from_slice(bytes)?;
        let mut list = TrustList::default();
        let mut refused = Vec::new();
        for entry in &file.keys {
            match TrustedKey::from_entry(entry) {
                Ok(k) => {
                    list.keys.insert(k.kid, Arc::new(k));
                }
                Err(error) => {
                    tracing::warn!(kid = %entry.kid, %error, "trust-list key refused");
                    refused.push(RefusedKey {
                        kid: entry.kid.clone(),
                        error,
                    });
                }
            }
        }
        Ok((list, refused))
    }

    /// The key for `kid`, if listed (revoked or not).
    #[inline]
    pub fn get(&self, kid: &[u8]) -> Option<&Arc<TrustedKey>> {
        self.keys.get(&ShortId::new(kid)?)
    }

    /// Whether `kid` was revoked through the feed (it stays revoked).
    #[inline]
    pub fn is_revoked(&self, kid: &Kid) -> bool {
        !self.revoked.is_empty() && self.revoked.contains(kid)
    }

    /// A copy with `key` added (or replacing the one with its kid).
    pub fn with_key(&self, key: TrustedKey) -> TrustList {
        let mut next = self.clone();
        next.keys.insert(key.kid, Arc::new(key));
        next
    }

    /// A copy with `kid` revoked.
    pub fn with_revoked(&self, kid: Kid) -> TrustList {
        let mut next = self.clone();
        next.revoked.insert(kid);
        next
    }

    /// Keys listed (revoked ones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the list holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Kids revoked.
    pub fn revoked(&self) -> impl Iterator<Item = &Kid> {
        self.revoked.iter()
    }

    /// Every key listed.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<TrustedKey>> {
        self.keys.values()
    }
}

/// The provincial root key: raw Ed25519, verifying the feed's `key` and `policy`
/// documents and the policy file.
#[derive(Debug, Clone)]
pub struct RootKey(VerifyingKey);

/// Why a root-signed document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootDocError {
    #[error("not base64url")]
    /// Not base64url.
    Encoding,
    #[error("not a COSE_Sign1: {0}")]
    /// Not a COSE_Sign1 the root signed.
    Cose(#[from] crate::cose::CoseError),
    #[error("root documents must be signed with EdDSA")]
    /// Not EdDSA.
    Alg,
    #[error("root signature does not verify")]
    /// The signature does not verify.
    Signature,
}

impl RootKey {
    /// From the file form: raw Ed25519, base64url, one line (surrounding whitespace is
    /// ignored).
    pub fn from_b64(text: &str) -> Result<RootKey, KeyError> {
        let raw = b64::decode(text.trim()).ok_or(KeyError::Encoding)?;
        Ok(RootKey(ed25519_key(&raw)?))
    }

    /// The root key of an Ed25519 public key.
    pub fn from_key(key: VerifyingKey) -> RootKey {
        RootKey(key)
    }

    /// Verifies a root-signed document (base64url COSE_Sign1) and returns its payload.
    /// The header's kid is not checked (`feed.md`): the root key is the one configured.
    pub fn open(&self, signed_b64: &str) -> Result<Vec<u8>, RootDocError> {
        let bytes = b64::decode(signed_b64.trim()).ok_or(RootDocError::Encoding)?;
        let s = Sign1::parse(&bytes)?;
        if s.alg != Alg::EdDsa {
            return Err(RootDocError::Alg);
        }
        let sig = ed25519_dalek::Signature::from_bytes(s.signature);
        self.0
            .verify_strict(&s.signed_bytes(), &sig)
            .map_err(|_| RootDocError::Signature)?;
        Ok(s.payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(alg: &str, pk: &str) -> TrustEntry {
        TrustEntry {
            kid: "azE".into(),
            issuer: "CN-33".into(),
            alg: alg.into(),
            public_key: pk.into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn refuses_small_order_and_invalid_points() {
        let identity = b64::encode(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        });
        assert_eq!(
            TrustedKey::from_entry(&entry("EdDSA", &identity)).unwrap_err(),
            KeyError::EdSmallOrder
        );
        let short = b64::encode(&[1u8; 31]);
        assert_eq!(
            TrustedKey::from_entry(&entry("EdDSA", &short)).unwrap_err(),
            KeyError::EdPoint
        );
        // A good key plus the point of order 2, (0, -1): (x, y) becomes (-x, -y), so the
        // encoding's y turns into p - y and the sign bit of x flips.
        let good = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        assert!(TrustedKey::from_entry(&entry("EdDSA", &b64::encode(&good))).is_ok());
        let mut y = good;
        y[31] &= 0x7f;
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut mixed = [0u8; 32];
        let mut borrow = 0i16;
        for i in 0..32 {
            let d = i16::from(p[i]) - i16::from(y[i]) - borrow;
            borrow = i16::from(d < 0);
            mixed[i] = (d + 256 * borrow) as u8;
        }
        mixed[31] |= (good[31] & 0x80) ^ 0x80;
        assert_eq!(
            TrustedKey::from_entry(&entry("EdDSA", &b64::encode(&mixed))).unwrap_err(),
            KeyError::EdMixedOrder
        );
        let mut pt = [0u8; 65];
        pt[0] = 4;
        pt[32] = 1;
        pt[64] = 1;
        assert_eq!(
            TrustedKey::from_entry(&entry("ES256", &b64::encode(&pt))).unwrap_err(),
            KeyError::EsPoint
        );
        let compressed = b64::encode(&[2u8; 33]);
        assert_eq!(
            TrustedKey::from_entry(&entry("ES256", &compressed)).unwrap_err(),
            KeyError::EsEncoding
        );
        assert_eq!(
            TrustedKey::from_entry(&entry("RS256", &identity)).unwrap_err(),
            KeyError::Alg
        );
    }

    #[test]
    fn window_must_parse_and_be_ordered() {
        let mut e = entry("EdDSA", "x");
        e.not_before = "2028-01-01T00:00:00Z".into();
        assert_eq!(TrustedKey::from_entry(&e).unwrap_err(), KeyError::Window);
        e.not_before = "yesterday".into();
        assert_eq!(TrustedKey::from_entry(&e).unwrap_err(), KeyError::Window);
    }

    #[test]
    fn bad_shape_is_fatal() {
        assert!(TrustList::from_json(b"{}").is_err());
        assert!(TrustList::from_json(b"{\"keys\": [{\"kid\": 1}]}").is_err());
        assert!(TrustList::from_json(b"not json").is_err());
        let (list, refused) = TrustList::from_json(b"{\"keys\": []}").unwrap();
        assert!(list.is_empty() && refused.is_empty());
    }
}
