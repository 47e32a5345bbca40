//! COSE_Sign1 (RFC 9052) as `token.md` restricts it: an array of four items, optionally
//! inside tag 18, whose protected header holds exactly `alg` and `kid`.
//!
//! Used for code tokens and for the root-signed documents of the feed (`key`, `policy`).
//! Parsing does not verify anything: see `signature.rs`.

use crate::cbor::{self, CborError, Key, Reader, NINT};

/// The COSE tag for COSE_Sign1.
pub const TAG_SIGN1: u64 = 18;
/// The only signature length accepted (Ed25519 `R||S`, ES256 raw `r||s`).
pub const SIGNATURE_LEN: usize = 64;
/// Longest key identifier.
pub const MAX_KID_LEN: usize = 16;

/// The two signature algorithms of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// EdDSA with Ed25519 (COSE -8).
    EdDsa,
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
}

impl Alg {
    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        match self {
            Alg::EdDsa => -8,
            Alg::Es256 => -7,
        }
    }

    /// The name used in `trust.json`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }

    /// Parses the `trust.json` name.
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "EdDSA" => Some(Alg::EdDsa),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// Why bytes are not an acceptable COSE_Sign1. All are `malformed` in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    /// The CBOR itself is refused.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// Not a four-item array, or a tag other than one outer 18.
    #[error("not a COSE_Sign1 structure")]
    NotSign1,
    /// The protected header is not exactly `{1: alg, 4: kid}`.
    #[error("protected header must hold exactly alg and kid")]
    ProtectedHeader,
    /// `alg` is neither -8 nor -7.
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// `kid` is not a byte string of 1 to 16 bytes.
    #[error("kid must be 1 to 16 bytes")]
    Kid,
    /// The signature is not 64 bytes.
    #[error("signature must be 64 bytes")]
    SignatureLength,
}

/// A parsed, not yet verified COSE_Sign1, borrowing from the decoded bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sign1<'a> {
    /// The algorithm of the protected header.
    pub alg: Alg,
    /// The key id.
    pub kid: &'a [u8],
    /// The protected header exactly as sent (it is signed as sent).
    pub protected: &'a [u8],
    /// The payload (the claims' CBOR).
    pub payload: &'a [u8],
    /// The signature (64 bytes for both algorithms).
    pub signature: &'a [u8; SIGNATURE_LEN],
}

impl<'a> Sign1<'a> {
    /// Parses `bytes` as a whole: nothing may follow the structure.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CoseError> {
        let mut r = Reader::new(bytes);
        let mut level = 1;
        if r.peek_major()? == cbor::TAG {
            if r.head()?.arg != TAG_SIGN1 {
                return Err(CoseError::NotSign1);
            }
            level = 2;
        }
        match r.peek_major()? {
            cbor::ARRAY => {}
            cbor::TAG => return Err(CoseError::NotSign1),
            _ => return Err(CoseError::NotSign1),
        }
        if r.array_len()? != 4 {
            return Err(CoseError::NotSign1);
        }
        let protected = r.bytes()?;
        let (alg, kid) = parse_protected(protected)?;
        let n = r.map_len()?;
        if level + 1 > cbor::MAX_DEPTH {
            return Err(CborError::TooDeep.into());
        }
        r.skip_map_entries(n, level + 1)?;
        let payload = r.bytes()?;
        let signature = r
            .bytes()?
            .try_into()
            .map_err(|_| CoseError::SignatureLength)?;
        r.finish()?;
        Ok(Sign1 {
            alg,
            kid,
            protected,
            payload,
            signature,
        })
    }

    /// Appends the bytes the signature covers: the CBOR encoding of
    /// `["Signature1", protected, h'', payload]` (RFC 9052 §4.4).
    pub fn signed_bytes_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.protected.len() + self.payload.len() + 24);
        out.push(0x84);
        cbor::write_text(out, "Signature1");
        cbor::write_bytes(out, self.protected);
        out.push(0x40);
        cbor::write_bytes(out, self.payload);
    }

    /// The signed bytes in a new vector.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.signed_bytes_into(&mut v);
        v
    }
}

fn parse_protected(bytes: &[u8]) -> Result<(Alg, &[u8]), CoseError> {
    let mut r = Reader::new(bytes);
    if r.peek_major().map_err(|_| CoseError::ProtectedHeader)? != cbor::MAP {
        return Err(CoseError::ProtectedHeader);
    }
    if r.map_len()? != 2 {
        return Err(CoseError::ProtectedHeader);
    }
    let (mut alg, mut kid) = (None, None);
    for _ in 0..2 {
        match r.key(2)? {
            k if k == Key::Int(cbor::UINT, 1) && alg.is_none() => {
                let h = r.head()?;
                alg = Some(match (h.major, h.arg) {
                    (NINT, 7) => Alg::EdDsa,
                    (NINT, 6) => Alg::Es256,
                    (cbor::TAG, _) => return Err(CborError::Tag.into()),
                    _ => return Err(CoseError::UnsupportedAlg),
                });
            }
            k if k == Key::Int(cbor::UINT, 4) && kid.is_none() => {
                let v = r.bytes().map_err(|e| match e {
                    CborError::Unexpected => CoseError::Kid,
                    e => e.into(),
                })?;
                if v.is_empty() || v.len() > MAX_KID_LEN {
                    return Err(CoseError::Kid);
                }
                kid = Some(v);
            }
            _ => return Err(CoseError::ProtectedHeader),
        }
    }
    r.finish()?;
    match (alg, kid) {
        (Some(a), Some(k)) => Ok((a, k)),
        _ => Err(CoseError::ProtectedHeader),
    }
}

/// Builds a COSE_Sign1 (tagged) over `payload`, with `sign` producing the 64-byte
/// signature of the signed bytes. Used by the issuing side and by tests.
pub fn build_sign1(
    alg: Alg,
    kid: &[u8],
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
) -> Vec<u8> {
    build_sign1_typed(alg, kid, None, payload, sign)
}

/// [`build_sign1`] with a `typ` (label 16) in the protected header when given: `{1: alg,
/// 16: typ, 4: kid}` (status lists and their updates, `offline.md`).
pub fn build_sign1_typed(
    alg: Alg,
    kid: &[u8],
    typ: Option<&str>,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
) -> Vec<u8> {
    let mut protected = Vec::with_capacity(kid.len() + typ.map_or(0, str::len) + 8);
    cbor::write_head(&mut protected, cbor::MAP, 2 + u64::from(typ.is_some()));
    cbor::write_int(&mut protected, 1);
    cbor::write_int(&mut protected, alg.cose_id());
    if let Some(t) = typ {
        cbor::write_int(&mut protected, 16);
        cbor::write_text(&mut protected, t);
    }
    cbor::write_int(&mut protected, 4);
    cbor::write_bytes(&mut protected, kid);
    let unsigned = Sign1 {
        alg,
        kid,
        protected: &protected,
        payload,
        signature: &[0; SIGNATURE_LEN],
    };
    let signature = sign(&unsigned.signed_bytes());
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 80);
    cbor::write_head(&mut out, cbor::TAG, TAG_SIGN1);
    out.push(0x84);
    cbor::write_bytes(&mut out, &protected);
    out.push(0xa0);
    cbor::write_bytes(&mut out, payload);
    cbor::write_bytes(&mut out, &signature);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = build_sign1(Alg::EdDsa, b"k1", b"hello", |_| [7; 64]);
        let s = Sign1::parse(&bytes).unwrap();
        assert_eq!(s.alg, Alg::EdDsa);
        assert_eq!(s.kid, b"k1");
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.signature, &[7; 64]);
        // Untagged is accepted too.
        assert!(Sign1::parse(&bytes[1..]).is_ok());
        // A second tag is not.
        let mut twice = vec![0xd2];
        twice.extend_from_slice(&bytes);
        assert!(Sign1::parse(&twice).is_err());
    }

    #[test]
    fn protected_header_rules() {
        let parse = |p: &[u8]| parse_protected(p).map(|(a, k)| (a, k.to_vec()));
        assert_eq!(
            parse(&[0xa2, 0x01, 0x27, 0x04, 0x41, 0x01]),
            Ok((Alg::EdDsa, vec![1]))
        );
        assert_eq!(
            parse(&[0xa2, 0x04, 0x41, 0x01, 0x01, 0x26]),
            Ok((Alg::Es256, vec![1]))
        );
        assert_eq!(
            parse(&[0xa2, 0x01, 0x26, 0x01, 0x26]),
            Err(CoseError::ProtectedHeader)
        );
        assert_eq!(
            parse(&[0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x01]),
            Err(CoseError::UnsupportedAlg)
        );
        assert_eq!(parse(&[0xa2, 0x01, 0x27, 0x04, 0x40]), Err(CoseError::Kid));
        assert_eq!(parse(&[0xa1, 0x01, 0x27]), Err(CoseError::ProtectedHeader));
        assert_eq!(parse(&[]), Err(CoseError::ProtectedHeader));
        assert_eq!(
            parse(&[0xa2, 0x01, 0x27, 0x04, 0x41, 0x01, 0x00]),
            Err(CborError::Trailing.into())
        );
    }
}
