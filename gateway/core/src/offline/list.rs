//! Status list tokens and their updates (`offline.md`), in three steps:
//!
//! 1. [`Envelope::parse`]: the COSE_Sign1_Tagged (tag 18 required) with its protected
//!    header `{1: alg, 16: typ, 4: kid}` (the kid may stand in the unprotected header
//!    instead, as in the draft's own example) and the claims map read as the draft
//!    defines it ([`Claims`]: every field optional, other claims skipped, duplicate keys
//!    refused). The draft's CWT example passes this step.
//! 2. [`Envelope::verify`]: the signature and the other checks of `token.md` 2 to 6
//!    against the trust list (kid known and not revoked, alg the key's, `iss` the
//!    key's issuer, `iat` inside its window and at most `skew` ahead of `now`).
//! 3. This profile: [`StatusList::open`] (typ, `bits` 2 first, then the required
//!    claims, the URI's NAME beginning with `iss-`, `lst` inflated within 64 MiB) and
//!    [`ListUpdate::open`] (typ, `base`, `n`, `changes` inflated within 16 MiB and
//!    decoded, each value 0 to 3).

use crate::cbor::{self, CborError, Key, KeySet, Reader};
use crate::cose::{Alg, SIGNATURE_LEN};
use crate::offline::bits::TwoBits;
use crate::offline::inflate::{self, InflateError};
use crate::token::list_name;
use crate::trust::{signature, TrustList, TrustedKey};

/// `typ` of a status list token.
pub const TYP_LIST: &str = "application/statuslist+cwt";
/// `typ` of a status list update.
pub const TYP_UPDATE: &str = "application/jkm-statuslist-update+cwt";

/// COSE_Sign1_Tagged.
const TAG_SIGN1: u64 = 18;

/// Claim labels (`offline.md`).
mod label {
    pub const ISS: i128 = 1;
    pub const SUB: i128 = 2;
    pub const EXP: i128 = 4;
    pub const IAT: i128 = 6;
    pub const STATUS_LIST: i128 = 65533;
    pub const TTL: i128 = 65534;
    pub const BASE: i128 = -65600;
    pub const N: i128 = -65601;
    pub const CHANGES: i128 = -65602;
    pub const REVOKED: i128 = -65603;
}

/// Most entries of a `revoked` array (each at least 11 bytes of CBOR: bounded by the
/// message anyway; this keeps a hostile array from costing more than a list).
pub const MAX_REVOKED: usize = 1 << 20;

/// Why a status list or update is refused (the whole document; nothing of it is used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// Not well-formed CBOR, or nested too deep, or a duplicate key.
    #[error("CBOR: {0}")]
    Cbor(#[from] CborError),
    /// Not a tagged COSE_Sign1 (tag 18 and a four-item array).
    #[error("not a COSE_Sign1_Tagged")]
    NotSign1,
    /// A protected header other than `{1: alg, 16: typ, 4: kid}` (kid possibly
    /// unprotected), or an alg that is neither -8 nor -7, or a kid not 1 to 16 bytes.
    #[error("protected header must hold alg, typ and kid")]
    Header,
    /// The `typ` is not the one expected here (errors are logged: the value, which
    /// the sender chose, is not repeated).
    #[error("typ is not the expected one")]
    Typ,
    /// `bits` other than 2 (this profile uses two bits only).
    #[error("bits is {0}: this profile uses 2 only")]
    Bits(u64),
    /// A claim missing, of the wrong type or out of range.
    #[error("claim {0} missing or invalid")]
    Claim(&'static str),
    /// `lst` or `changes` is not a zlib stream within its bound.
    #[error("{0}")]
    Inflate(#[from] InflateError),
    /// The URI's NAME does not begin with `iss` and `-`.
    #[error("the list's NAME does not begin with its iss and '-'")]
    NameNotIssuers,
    /// The key is unknown or revoked, its alg is not the document's, its issuer is not
    /// `iss`, or `iat` is outside its window.
    #[error("key: {0}")]
    Key(&'static str),
    /// `iat` is more than the skew ahead of the clock.
    #[error("iat is ahead of the clock")]
    NotYetValid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A signed document's envelope and claims, parsed, not yet verified.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The algorithm.
    pub alg: Alg,
    /// The key id (from the protected header, else the unprotected one).
    pub kid: &'a [u8],
    /// The `typ` of the protected header.
    pub typ: &'a str,
    protected: &'a [u8],
    payload: &'a [u8],
    signature: &'a [u8; SIGNATURE_LEN],
    /// The claims as the draft defines them.
    pub claims: Claims<'a>,
}

/// The claims of a status list token or update, each optional at this step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims<'a> {
    /// 1.
    pub iss: Option<&'a str>,
    /// 2: the list's URI.
    pub sub: Option<&'a str>,
    /// 6.
    pub iat: Option<u64>,
    /// 4.
    pub exp: Option<u64>,
    /// 65534.
    pub ttl: Option<u64>,
    /// 65533: `bits` and `lst` (other keys skipped).
    pub status_list: Option<(u64, &'a [u8])>,
    /// -65600.
    pub base: Option<u64>,
    /// -65601.
    pub n: Option<u64>,
    /// -65602: the zlib stream of the changes.
    pub changes: Option<&'a [u8]>,
    /// -65603: `[cti, exp]` pairs.
    pub revoked: Option<Vec<Revoked>>,
}

/// A token revoked until its `exp`, as a list or update carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// The token id (8 to 16 bytes), in a fixed buffer.
    pub cti: crate::status::Cti,
    /// Its expiry.
    pub exp: u64,
}

impl<'a> Envelope<'a> {
    /// Step 1: the structure and the claims.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, ListError> {
        let mut r = Reader::new(bytes);
        if r.peek_major()? != cbor::TAG || r.head()?.arg != TAG_SIGN1 {
            return Err(ListError::NotSign1);
        }
        if r.peek_major()? != cbor::ARRAY || r.array_len()? != 4 {
            return Err(ListError::NotSign1);
        }
        let protected = r.bytes()?;
        let (alg, typ, mut kid) = protected_header(protected)?;
        let n = r.map_len()?;
        let mut keys = KeySet::default();
        for _ in 0..n {
            let key = r.key(3)?;
            keys.insert(key)?;
            if key == Key::Int(cbor::UINT, 4) && kid.is_none() {
                kid = Some(checked_kid(r.bytes()?)?);
            } else {
                r.skip(3)?;
            }
        }
        keys.finish()?;
        let payload = r.bytes()?;
        let signature: &[u8; SIGNATURE_LEN] =
            r.bytes()?.try_into().map_err(|_| ListError::NotSign1)?;
        r.finish()?;
        let kid = kid.ok_or(ListError::Header)?;
        let claims = parse_claims(payload)?;
        Ok(Envelope {
            alg,
            kid,
            typ,
            protected,
            payload,
            signature,
            claims,
        })
    }

    /// Step 2: the signature and `token.md` checks 2 to 6 against `trust` at `now`
    /// with `skew` seconds of tolerance.
    pub fn verify<'t>(
        &self,
        trust: &'t TrustList,
        now: u64,
        skew: u64,
    ) -> Result<&'t TrustedKey, ListError> {
        let key = trust.get(self.kid).ok_or(ListError::Key("unknown kid"))?;
        if trust.is_revoked(&key.kid) {
            return Err(ListError::Key("revoked"));
        }
        if key.alg != self.alg {
            return Err(ListError::Key("alg mismatch"));
        }
        let msg = signed_bytes(self.alg, self.kid, self.protected, self.payload);
        signature::verify_raw(&key.public_key, &msg, self.signature)
            .map_err(|_| ListError::BadSignature)?;
        let c = &self.claims;
        if c.iss != Some(key.issuer.as_str()) {
            return Err(ListError::Key("issuer is not iss"));
        }
        let iat = c.iat.ok_or(ListError::Claim("iat"))?;
        if i128::from(iat) < i128::from(key.not_before)
            || i128::from(iat) > i128::from(key.not_after)
        {
            return Err(ListError::Key("iat outside the key's window"));
        }
        if iat > now.saturating_add(skew) {
            return Err(ListError::NotYetValid);
        }
        Ok(&**key)
    }

    fn expect_typ(&self, typ: &str) -> Result<(), ListError> {
        if self.typ == typ {
            Ok(())
        } else {
            Err(ListError::Typ)
        }
    }

    /// The list's URI and `iss`, required, the NAME beginning with `iss-`.
    fn named(&self) -> Result<(&'a str, &'a str), ListError> {
        let iss = self.claims.iss.ok_or(ListError::Claim("iss"))?;
        let uri = self.claims.sub.ok_or(ListError::Claim("sub"))?;
        let name = list_name(uri).ok_or(ListError::Claim("sub"))?;
        match name.strip_prefix(iss) {
            Some(rest) if rest.starts_with('-') => Ok((iss, uri)),
            _ => Err(ListError::NameNotIssuers),
        }
    }
}

/// A status list token, checked whole (`offline.md`, "The status list token").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    /// Its issuer.
    pub iss: String,
    /// Its URI (the tokens' `uri`).
    pub uri: String,
    /// Every change before this second is in it.
    pub iat: u64,
    /// Not used after this.
    pub exp: Option<u64>,
    /// Seconds a consumer may cache it.
    pub ttl: Option<u64>,
    /// Two bits per index.
    pub bits: TwoBits,
    /// Tokens revoked and not yet expired at `iat`.
    pub revoked: Vec<Revoked>,
}

impl StatusList {
    /// Parses, verifies against `trust` at `now` (`skew` seconds of tolerance) and holds
    /// to this profile.
    pub fn open(
        bytes: &[u8],
        trust: &TrustList,
        now: u64,
        skew: u64,
    ) -> Result<StatusList, ListError> {
        let env = Envelope::parse(bytes)?;
        env.expect_typ(TYP_LIST)?;
        let (bits, lst) = env
            .claims
            .status_list
            .ok_or(ListError::Claim("status_list"))?;
        if bits != 2 {
            return Err(ListError::Bits(bits));
        }
        let (iss, uri) = env.named()?;
        if env.claims.ttl == Some(0) {
            return Err(ListError::Claim("ttl"));
        }
        env.verify(trust, now, skew)?;
        let bytes = inflate::zlib(lst, inflate::MAX_LIST_BYTES)?;
        Ok(StatusList {
            iss: iss.to_owned(),
            uri: uri.to_owned(),
            iat: env.claims.iat.ok_or(ListError::Claim("iat"))?,
            exp: env.claims.exp,
            ttl: env.claims.ttl,
            bits: TwoBits::from_bytes(bytes),
            revoked: env.claims.revoked.clone().unwrap_or_default(),
        })
    }
}

/// A status list update, checked whole (`offline.md`, "Status list updates"); whether
/// it applies is the holder's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUpdate {
    /// Its issuer.
    pub iss: String,
    /// The list's URI.
    pub uri: String,
    /// Every change before this second is in it.
    pub iat: u64,
    /// The `iat` of the list it extends.
    pub base: u64,
    /// 1 for the first update after the list.
    pub n: u64,
    /// (index, value) in order; a later one for the same index wins.
    pub changes: Vec<(u32, u8)>,
    /// Tokens revoked since the previous update.
    pub revoked: Vec<Revoked>,
}

impl ListUpdate {
    /// Parses, verifies against `trust` at `now` and holds to this profile.
    pub fn open(
        bytes: &[u8],
        trust: &TrustList,
        now: u64,
        skew: u64,
    ) -> Result<ListUpdate, ListError> {
        let env = Envelope::parse(bytes)?;
        env.expect_typ(TYP_UPDATE)?;
        let (iss, uri) = env.named()?;
        let base = env.claims.base.ok_or(ListError::Claim("base"))?;
        let n = env
            .claims
            .n
            .filter(|n| *n >= 1)
            .ok_or(ListError::Claim("n"))?;
        let z = env.claims.changes.ok_or(ListError::Claim("changes"))?;
        env.verify(trust, now, skew)?;
        let raw = inflate::zlib(z, inflate::MAX_CHANGES_BYTES)?;
        Ok(ListUpdate {
            iss: iss.to_owned(),
            uri: uri.to_owned(),
            iat: env.claims.iat.ok_or(ListError::Claim("iat"))?,
            base,
            n,
            changes: decode_changes(&raw)?,
            revoked: env.claims.revoked.clone().unwrap_or_default(),
        })
    }
}

/// The inflated `changes`: one CBOR array `[idx, value, …]` of unsigned integers, an even
/// count, each idx below 2^32 and each value 0 to 3, nothing after it.
pub fn decode_changes(raw: &[u8]) -> Result<Vec<(u32, u8)>, ListError> {
    let bad = ListError::Claim("changes");
    let mut r = Reader::new(raw);
    let n = r.array_len()?;
    if n % 2 != 0 {
        return Err(bad);
    }
    // Each pair is at least two bytes: the count is bounded by the input.
    let mut out = Vec::with_capacity((n / 2).min(raw.len() / 2));
    for _ in 0..n / 2 {
        let idx = u32::try_from(r.uint().map_err(|_| bad.clone())?).map_err(|_| bad.clone())?;
        let v = r.uint().map_err(|_| bad.clone())?;
        if v > 3 {
            return Err(bad);
        }
        out.push((idx, v as u8));
    }
    r.finish()?;
    Ok(out)
}

fn checked_kid(kid: &[u8]) -> Result<&[u8], ListError> {
    if kid.is_empty() || kid.len() > crate::cose::MAX_KID_LEN {
        return Err(ListError::Header);
    }
    Ok(kid)
}

/// `{1: alg, 16: typ}` with `4: kid` or without it; nothing else.
fn protected_header(bytes: &[u8]) -> Result<(Alg, &str, Option<&[u8]>), ListError> {
    let mut r = Reader::new(bytes);
    if r.peek_major().map_err(|_| ListError::Header)? != cbor::MAP {
        return Err(ListError::Header);
    }
    let n = r.map_len()?;
    if !(2..=3).contains(&n) {
        return Err(ListError::Header);
    }
    let (mut alg, mut typ, mut kid) = (None, None, None);
    for _ in 0..n {
        match r.key(2)? {
            k if k == Key::Int(cbor::UINT, 1) && alg.is_none() => {
                let h = r.head()?;
                alg = Some(match (h.major, h.arg) {
                    (cbor::NINT, 7) => Alg::EdDsa,
                    (cbor::NINT, 6) => Alg::Es256,
                    _ => return Err(ListError::Header),
                });
            }
            k if k == Key::Int(cbor::UINT, 16) && typ.is_none() => {
                typ = Some(r.text().map_err(|_| ListError::Header)?)
            }
            k if k == Key::Int(cbor::UINT, 4) && kid.is_none() => {
                kid = Some(checked_kid(r.bytes().map_err(|_| ListError::Header)?)?)
            }
            _ => return Err(ListError::Header),
        }
    }
    r.finish()?;
    match (alg, typ) {
        (Some(a), Some(t)) => Ok((a, t, kid)),
        _ => Err(ListError::Header),
    }
}

fn text_key(key: &Key<'_>, name: &str) -> bool {
    matches!(key, Key::Str(cbor::TEXT, k) if *k == name.as_bytes())
}

/// The claims map (level 2), every claim of either document type read when present.
fn parse_claims(payload: &[u8]) -> Result<Claims<'_>, ListError> {
    let mut r = Reader::new(payload);
    if r.peek_major()? != cbor::MAP {
        return Err(ListError::Claim("claims"));
    }
    let n = r.map_len()?;
    let mut keys = KeySet::default();
    let mut c = Claims::default();
    let typed = |what: &'static str| move |_| ListError::Claim(what);
    for _ in 0..n {
        let key = r.key(2)?;
        keys.insert(key)?;
        match key.label() {
            Some(label::ISS) => c.iss = Some(r.text().map_err(typed("iss"))?),
            Some(label::SUB) => c.sub = Some(r.text().map_err(typed("sub"))?),
            Some(label::IAT) => c.iat = Some(r.uint().map_err(typed("iat"))?),
            Some(label::EXP) => c.exp = Some(r.uint().map_err(typed("exp"))?),
            Some(label::TTL) => c.ttl = Some(r.uint().map_err(typed("ttl"))?),
            Some(label::BASE) => c.base = Some(r.uint().map_err(typed("base"))?),
            Some(label::N) => c.n = Some(r.uint().map_err(typed("n"))?),
            Some(label::CHANGES) => c.changes = Some(r.bytes().map_err(typed("changes"))?),
            Some(label::STATUS_LIST) => c.status_list = Some(parse_status_list(&mut r)?),
            Some(label::REVOKED) => c.revoked = Some(parse_revoked(&mut r)?),
            _ => r.skip(2)?,
        }
    }
    r.finish()?;
    keys.finish()?;
    Ok(c)
}

/// `{"bits": uint, "lst": bytes, …}` (level 3; other keys skipped).
fn parse_status_list<'a>(r: &mut Reader<'a>) -> Result<(u64, &'a [u8]), ListError> {
    let bad = ListError::Claim("status_list");
    let n = r.map_len().map_err(|_| bad.clone())?;
    let mut keys = KeySet::default();
    let (mut bits, mut lst) = (None, None);
    for _ in 0..n {
        let key = r.key(3)?;
        keys.insert(key)?;
        if text_key(&key, "bits") {
            bits = Some(r.uint().map_err(|_| bad.clone())?);
        } else if text_key(&key, "lst") {
            lst = Some(r.bytes().map_err(|_| bad.clone())?);
        } else {
            r.skip(3)?;
        }
    }
    keys.finish()?;
    bits.zip(lst).ok_or(bad)
}

/// `[[cti, exp], …]` (levels 3 and 4).
fn parse_revoked(r: &mut Reader<'_>) -> Result<Vec<Revoked>, ListError> {
    let bad = ListError::Claim("revoked");
    let n = r.array_len().map_err(|_| bad.clone())?;
    if n > MAX_REVOKED {
        return Err(bad);
    }
    let mut out = Vec::with_capacity(n.min(r.remaining() / 11));
    for _ in 0..n {
        if r.array_len().map_err(|_| bad.clone())? != 2 {
            return Err(bad);
        }
        let cti = r.bytes().map_err(|_| bad.clone())?;
        if !(8..=16).contains(&cti.len()) {
            return Err(bad);
        }
        let cti = crate::status::Cti::new(cti).ok_or_else(|| bad.clone())?;
        let exp = r.uint().map_err(|_| bad.clone())?;
        out.push(Revoked { cti, exp });
    }
    Ok(out)
}

/// A status list to sign (the issuing side, tests): the claims' CBOR.
#[derive(Debug, Clone)]
pub struct NewList<'a> {
    /// Its issuer.
    pub iss: &'a str,
    /// Its URI.
    pub uri: &'a str,
    /// The second the list reflects every change before.
    pub iat: u64,
    /// Optional end of use.
    pub exp: Option<u64>,
    /// Optional cache time, seconds (positive).
    pub ttl: Option<u64>,
    /// The values.
    pub bits: &'a TwoBits,
    /// Tokens revoked and not expired.
    pub revoked: &'a [Revoked],
}

impl NewList<'_> {
    /// The claims map, `lst` deflated at `level` (0 to 10; 6 is zlib's default).
    pub fn encode(&self, level: u8) -> Vec<u8> {
        let lst = miniz_oxide::deflate::compress_to_vec_zlib(self.bits.as_bytes(), level);
        let n = 4
            + usize::from(self.exp.is_some())
            + usize::from(self.ttl.is_some())
            + usize::from(!self.revoked.is_empty());
        let mut out = Vec::with_capacity(lst.len() + 128 + self.revoked.len() * 24);
        write_common(&mut out, n, self.iss, self.uri, self.iat);
        for (l, v) in [(label::EXP, self.exp), (label::TTL, self.ttl)] {
            if let Some(v) = v {
                write_uint(&mut out, l, v);
            }
        }
        write_label(&mut out, label::STATUS_LIST);
        cbor::write_head(&mut out, cbor::MAP, 2);
        cbor::write_text(&mut out, "bits");
        cbor::write_head(&mut out, cbor::UINT, 2);
        cbor::write_text(&mut out, "lst");
        cbor::write_bytes(&mut out, &lst);
        write_revoked(&mut out, self.revoked);
        out
    }
}

/// An update to sign.
#[derive(Debug, Clone)]
pub struct NewUpdate<'a> {
    /// Its issuer.
    pub iss: &'a str,
    /// The list's URI.
    pub uri: &'a str,
    /// The second the update reflects every change before.
    pub iat: u64,
    /// The `iat` of the list it extends.
    pub base: u64,
    /// Its place after the list (1, 2, …).
    pub n: u64,
    /// (index, value) pairs.
    pub changes: &'a [(u32, u8)],
    /// Tokens revoked since the previous update.
    pub revoked: &'a [Revoked],
}

impl NewUpdate<'_> {
    /// The claims map, `changes` deflated at `level`.
    pub fn encode(&self, level: u8) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.changes.len() * 6 + 9);
        cbor::write_head(&mut raw, cbor::ARRAY, self.changes.len() as u64 * 2);
        for (idx, v) in self.changes {
            cbor::write_head(&mut raw, cbor::UINT, u64::from(*idx));
            cbor::write_head(&mut raw, cbor::UINT, u64::from(*v));
        }
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&raw, level);
        let n = 6 + usize::from(!self.revoked.is_empty());
        let mut out = Vec::with_capacity(z.len() + 128 + self.revoked.len() * 24);
        write_common(&mut out, n, self.iss, self.uri, self.iat);
        write_uint(&mut out, label::BASE, self.base);
        write_uint(&mut out, label::N, self.n);
        write_label(&mut out, label::CHANGES);
        cbor::write_bytes(&mut out, &z);
        write_revoked(&mut out, self.revoked);
        out
    }
}

/// What the signature covers (RFC 9052 §4.4), as for code tokens.
fn signed_bytes(alg: Alg, kid: &[u8], protected: &[u8], payload: &[u8]) -> Vec<u8> {
    crate::cose::Sign1 {
        alg,
        kid,
        protected,
        payload,
        signature: &[0; SIGNATURE_LEN],
    }
    .signed_bytes()
}

/// The claims map's head for `n` claims, then `iss`, `sub` and `iat`.
fn write_common(out: &mut Vec<u8>, n: usize, iss: &str, uri: &str, iat: u64) {
    cbor::write_head(out, cbor::MAP, n as u64);
    write_label(out, label::ISS);
    cbor::write_text(out, iss);
    write_label(out, label::SUB);
    cbor::write_text(out, uri);
    write_uint(out, label::IAT, iat);
}

fn write_uint(out: &mut Vec<u8>, l: i128, v: u64) {
    write_label(out, l);
    cbor::write_head(out, cbor::UINT, v);
}

fn write_label(out: &mut Vec<u8>, l: i128) {
    match u64::try_from(l) {
        Ok(v) => cbor::write_head(out, cbor::UINT, v),
        Err(_) => cbor::write_head(out, cbor::NINT, (-1 - l) as u64),
    }
}

fn write_revoked(out: &mut Vec<u8>, revoked: &[Revoked]) {
    if revoked.is_empty() {
        return;
    }
    write_label(out, label::REVOKED);
    cbor::write_head(out, cbor::ARRAY, revoked.len() as u64);
    for r in revoked {
        out.push(0x82);
        cbor::write_bytes(out, r.cti.as_bytes());
        cbor::write_head(out, cbor::UINT, r.exp);
    }
}

/// A COSE_Sign1_Tagged over `payload` with the protected header `{1: alg, 16: typ, 4:
/// kid}`, `sign` making the signature of the signed bytes.
pub fn build_signed(
    alg: Alg,
    kid: &[u8],
    typ: &str,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
) -> Vec<u8> {
    crate::cose::build_sign1_typed(alg, kid, Some(typ), payload, sign)
}
