//! The JKM1 code token (`token.md`): text form → bytes → COSE_Sign1 → claims.
//!
//! Everything here is step 1 of the checks (`malformed`); nothing is verified yet. The
//! result borrows from the decoded bytes, so a decision allocates one buffer at most.

use crate::base45;
use crate::cbor::{self, CborError, KeySet, Reader};
use crate::cose::{CoseError, Sign1};
use crate::status::{Color, Sub};

/// The text prefix, case-sensitive.
pub const PREFIX: &str = "JKM1:";
/// Longest accepted text, checked before any decoding.
pub const MAX_TEXT_LEN: usize = 1200;
/// Most companions a token may carry.
pub const MAX_COMPANIONS: usize = 8;

/// Claim labels (`token.md`, "Claims").
mod label {
    pub const ISS: i128 = 1;
    pub const SUB: i128 = 2;
    pub const EXP: i128 = 4;
    pub const IAT: i128 = 6;
    pub const CTI: i128 = 7;
    pub const COLOR: i128 = -65537;
    pub const VER: i128 = -65538;
    pub const WHY: i128 = -65539;
    pub const KIND: i128 = -65540;
    pub const WITH: i128 = -65541;
    pub const STATUS: i128 = 65535;
}

/// Why a code is `malformed`; kept apart for tests and debugging, never shown to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedError {
    #[error("text longer than {MAX_TEXT_LEN} characters")]
    /// Longer than a code may be.
    TooLong,
    #[error("missing JKM1: prefix")]
    /// Does not start `JKM1:`.
    Prefix,
    #[error("bad Base45: {0}")]
    /// Not Base45.
    Base45(#[from] base45::Base45Error),
    #[error("bad COSE_Sign1: {0}")]
    /// Not a COSE_Sign1 of the profile.
    Cose(#[from] CoseError),
    #[error("bad claims CBOR: {0}")]
    /// Not strict deterministic CBOR.
    Cbor(#[from] CborError),
    #[error("claims payload is not a map")]
    /// The payload is not a map.
    NotAMap,
    #[error("required claim missing")]
    /// A required claim is missing.
    MissingClaim,
    #[error("claim of the wrong type or out of range")]
    /// A claim of the wrong type or out of range.
    BadClaim,
    #[error("iat is not before exp")]
    /// `iat` is not before `exp`.
    IatNotBeforeExp,
}

/// Document kind of the holder (`kind` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    /// A resident identity card.
    ResidentId,
    /// A passport.
    Passport,
    /// A residence permit.
    Permit,
}

/// One companion bound to the holder's phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Companion {
    /// Whose.
    pub sub: Sub,
    /// The companion's color.
    pub color: Color,
    /// Its status version.
    pub ver: u64,
}

/// The companions of a token, held inline (at most eight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Companions {
    items: [Companion; MAX_COMPANIONS],
    len: u8,
}

impl Companions {
    /// The companions.
    pub fn as_slice(&self) -> &[Companion] {
        &self.items[..usize::from(self.len)]
    }

    /// Adds one; the caller checks the bound first.
    fn push(&mut self, c: Companion) {
        self.items[usize::from(self.len)] = c;
        self.len += 1;
    }
}

/// The claims of a token, as decoded (not yet trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims<'a> {
    /// The issuer.
    pub iss: &'a str,
    /// The holder's pseudonym.
    pub sub: Sub,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// The token id.
    pub cti: &'a [u8],
    /// The holder's color at issue.
    pub color: Color,
    /// The holder's status version at issue.
    pub ver: u64,
    /// Reason code; a value outside the table counts as 9 (`why()`).
    pub why: Option<u64>,
    /// The document kind.
    pub kind: Kind,
    /// `None` when the claim is absent, so an empty `with` stays distinguishable.
    pub with: Option<Companions>,
    /// The holder's place in a status list (`status` claim, `offline.md`); `None`
    /// without the claim or without its `status_list`.
    pub status: Option<StatusRef<'a>>,
}

/// Where a token's holder stands in a status list (`offline.md`, "The status claim").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRef<'a> {
    /// The index in the list (below 2^32).
    pub idx: u32,
    /// The list's URI, ending in `/status-lists/NAME`.
    pub uri: &'a str,
}

impl<'a> StatusRef<'a> {
    /// The list's NAME: the URI's last segment.
    pub fn name(&self) -> &'a str {
        list_name(self.uri).unwrap_or_default()
    }
}

/// Longest status-list URI, in bytes.
pub const MAX_URI_LEN: usize = 255;
/// Longest status-list NAME, in characters.
pub const MAX_LIST_NAME_LEN: usize = 64;

/// The NAME of a URI that ends in `/status-lists/NAME` (1 to 64 characters of
/// `A-Z a-z 0-9 _ -`), or `None` when the URI is not of that shape or length.
pub fn list_name(uri: &str) -> Option<&str> {
    if uri.is_empty() || uri.len() > MAX_URI_LEN {
        return None;
    }
    let (head, name) = uri.rsplit_once('/')?;
    let ok = head.ends_with("/status-lists") || head == "status-lists";
    (ok && is_list_name(name)).then_some(name)
}

/// Whether `name` is a well-formed list NAME.
pub fn is_list_name(name: &str) -> bool {
    (1..=MAX_LIST_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Claims<'_> {
    /// The reason code, with values outside 1..=9 read as 9 ("other").
    pub fn why(&self) -> Option<u8> {
        self.why
            .map(|w| if (1..=9).contains(&w) { w as u8 } else { 9 })
    }
}

/// A decoded token: the COSE structure and its claims. Not verified.
#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    /// The COSE_Sign1 as parsed.
    pub cose: Sign1<'a>,
    /// Its claims.
    pub claims: Claims<'a>,
}

/// Decodes the text form into the COSE bytes, into a reusable buffer.
pub fn decode_text_into(text: &str, out: &mut Vec<u8>) -> Result<(), MalformedError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(MalformedError::TooLong);
    }
    let b45 = text.strip_prefix(PREFIX).ok_or(MalformedError::Prefix)?;
    base45::decode_into(b45.as_bytes(), out)?;
    Ok(())
}

/// Decodes the text form into new COSE bytes.
pub fn decode_text(text: &str) -> Result<Vec<u8>, MalformedError> {
    let mut out = Vec::new();
    decode_text_into(text, &mut out)?;
    Ok(out)
}

impl<'a> Token<'a> {
    /// Parses COSE bytes (from [`decode_text`]) into a token.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MalformedError> {
        let cose = Sign1::parse(bytes)?;
        let claims = parse_claims(cose.payload)?;
        Ok(Token { cose, claims })
    }
}

fn bad<T>(_: T) -> MalformedError {
    MalformedError::BadClaim
}

fn color(v: u64) -> Result<Color, MalformedError> {
    Color::from_code(v).ok_or(MalformedError::BadClaim)
}

fn sub(b: &[u8]) -> Result<Sub, MalformedError> {
    <[u8; 16]>::try_from(b).map(Sub).map_err(bad)
}

/// Maps a CBOR error inside a claim value: a wrong type is a bad claim, anything else
/// (truncation, tags, depth) keeps its own cause.
fn typed(e: CborError) -> MalformedError {
    match e {
        CborError::Unexpected => MalformedError::BadClaim,
        e => MalformedError::Cbor(e),
    }
}

/// Parses the claims map, which is decoded as an item of its own from level 1.
pub fn parse_claims(payload: &[u8]) -> Result<Claims<'_>, MalformedError> {
    let mut r = Reader::new(payload);
    if r.peek_major()? != cbor::MAP {
        return Err(MalformedError::NotAMap);
    }
    let n = r.map_len()?;
    // Known labels are checked for duplicates by their slot below; only unknown keys
    // (rare) go through a key set, which allocates nothing until the first one.
    let mut unknown = KeySet::default();
    let (mut iss, mut sub_, mut exp, mut iat, mut cti) = (None, None, None, None, None);
    let (mut col, mut ver, mut why, mut kind, mut with) = (None, None, None, None, None);
    let mut status: Option<Option<StatusRef<'_>>> = None;
    for _ in 0..n {
        let key = r.key(2)?;
        let dup = match key.label() {
            Some(label::ISS) => iss.is_some(),
            Some(label::SUB) => sub_.is_some(),
            Some(label::EXP) => exp.is_some(),
            Some(label::IAT) => iat.is_some(),
            Some(label::CTI) => cti.is_some(),
            Some(label::COLOR) => col.is_some(),
            Some(label::VER) => ver.is_some(),
            Some(label::WHY) => why.is_some(),
            Some(label::KIND) => kind.is_some(),
            Some(label::WITH) => with.is_some(),
            Some(label::STATUS) => status.is_some(),
            _ => {
                unknown.insert(key)?;
                false
            }
        };
        if dup {
            return Err(CborError::DuplicateKey.into());
        }
        match key.label() {
            Some(label::ISS) => {
                let s = r.text().map_err(typed)?;
                if s.is_empty() || s.len() > 32 {
                    return Err(MalformedError::BadClaim);
                }
                iss = Some(s);
            }
            Some(label::SUB) => sub_ = Some(sub(r.bytes().map_err(typed)?)?),
            Some(label::EXP) => exp = Some(r.uint().map_err(typed)?),
            Some(label::IAT) => iat = Some(r.uint().map_err(typed)?),
            Some(label::CTI) => {
                let b = r.bytes().map_err(typed)?;
                if !(8..=16).contains(&b.len()) {
                    return Err(MalformedError::BadClaim);
                }
                cti = Some(b);
            }
            Some(label::COLOR) => col = Some(color(r.uint().map_err(typed)?)?),
            Some(label::VER) => ver = Some(r.uint().map_err(typed)?),
            Some(label::WHY) => why = Some(r.uint().map_err(typed)?),
            Some(label::KIND) => {
                kind = Some(match r.uint().map_err(typed)? {
                    0 => Kind::ResidentId,
                    1 => Kind::Passport,
                    2 => Kind::Permit,
                    _ => return Err(MalformedError::BadClaim),
                })
            }
            Some(label::WITH) => with = Some(parse_with(&mut r)?),
            Some(label::STATUS) => status = Some(parse_status(&mut r)?),
            _ => r.skip(2)?,
        }
    }
    r.finish()?;
    unknown.finish()?;
    let missing = MalformedError::MissingClaim;
    let (exp, iat) = (exp.ok_or(missing)?, iat.ok_or(missing)?);
    let claims = Claims {
        iss: iss.ok_or(missing)?,
        sub: sub_.ok_or(missing)?,
        exp,
        iat,
        cti: cti.ok_or(missing)?,
        color: col.ok_or(missing)?,
        ver: ver.ok_or(missing)?,
        why,
        kind: kind.unwrap_or_default(),
        with,
        status: status.flatten(),
    };
    if iat >= exp {
        return Err(MalformedError::IatNotBeforeExp);
    }
    Ok(claims)
}

/// `with`: an array (level 2) of at most eight `[sub, color, ver]` arrays (level 3).
fn parse_with(r: &mut Reader<'_>) -> Result<Companions, MalformedError> {
    let n = r.array_len().map_err(typed)?;
    if n > MAX_COMPANIONS {
        return Err(MalformedError::BadClaim);
    }
    let mut out = Companions::default();
    for _ in 0..n {
        if r.array_len().map_err(typed)? != 3 {
            return Err(MalformedError::BadClaim);
        }
        let s = sub(r.bytes().map_err(typed)?)?;
        let c = color(r.uint().map_err(typed)?)?;
        let v = r.uint().map_err(typed)?;
        out.push(Companion {
            sub: s,
            color: c,
            ver: v,
        });
    }
    Ok(out)
}

/// Whether a map key is the text `name`.
fn is_text_key(key: &cbor::Key<'_>, name: &str) -> bool {
    matches!(key, cbor::Key::Str(cbor::TEXT, k) if *k == name.as_bytes())
}

/// `status` (level 2): a non-empty map with text keys; its `status_list`, when present,
/// a map (level 3) holding `idx` and `uri`. Other keys of either map are skipped.
fn parse_status<'a>(r: &mut Reader<'a>) -> Result<Option<StatusRef<'a>>, MalformedError> {
    let n = r.map_len().map_err(typed)?;
    if n == 0 {
        return Err(MalformedError::BadClaim);
    }
    let mut keys = KeySet::default();
    let mut found = None;
    for _ in 0..n {
        let key = r.key(3)?;
        keys.insert(key)?;
        if is_text_key(&key, "status_list") {
            found = Some(parse_status_list(r)?);
        } else {
            r.skip(3)?;
        }
    }
    keys.finish()?;
    Ok(found)
}

fn parse_status_list<'a>(r: &mut Reader<'a>) -> Result<StatusRef<'a>, MalformedError> {
    let n = r.map_len().map_err(typed)?;
    let mut keys = KeySet::default();
    let (mut idx, mut uri) = (None, None);
    for _ in 0..n {
        let key = r.key(4)?;
        keys.insert(key)?;
        if is_text_key(&key, "idx") {
            let v = r.uint().map_err(typed)?;
            idx = Some(u32::try_from(v).map_err(bad)?);
        } else if is_text_key(&key, "uri") {
            let u = r.text().map_err(typed)?;
            list_name(u).ok_or(MalformedError::BadClaim)?;
            uri = Some(u);
        } else {
            r.skip(4)?;
        }
    }
    keys.finish()?;
    match (idx, uri) {
        (Some(idx), Some(uri)) => Ok(StatusRef { idx, uri }),
        _ => Err(MalformedError::BadClaim),
    }
}

/// Claims to encode, for the issuing side and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClaims {
    /// The issuer.
    pub iss: String,
    /// The holder's pseudonym.
    pub sub: Sub,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// The token id.
    pub cti: Vec<u8>,
    /// The holder's color.
    pub color: Color,
    /// The holder's status version.
    pub ver: u64,
    /// The reason code, if any.
    pub why: Option<u64>,
    /// The document kind, if any.
    pub kind: Option<Kind>,
    /// Companions (at most 8), if any.
    pub with: Option<Vec<Companion>>,
    /// The holder's status list entry (`idx`, `uri`), if any.
    pub status: Option<(u32, String)>,
}

impl NewClaims {
    /// Encodes the claims map.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let n = 7
            + usize::from(self.why.is_some())
            + usize::from(self.kind.is_some())
            + usize::from(self.with.is_some())
            + usize::from(self.status.is_some());
        cbor::write_head(&mut out, cbor::MAP, n as u64);
        cbor::write_int(&mut out, 1);
        cbor::write_text(&mut out, &self.iss);
        cbor::write_int(&mut out, 2);
        cbor::write_bytes(&mut out, &self.sub.0);
        cbor::write_int(&mut out, 4);
        cbor::write_head(&mut out, cbor::UINT, self.exp);
        cbor::write_int(&mut out, 6);
        cbor::write_head(&mut out, cbor::UINT, self.iat);
        cbor::write_int(&mut out, 7);
        cbor::write_bytes(&mut out, &self.cti);
        cbor::write_int(&mut out, -65537);
        cbor::write_head(&mut out, cbor::UINT, self.color.code());
        cbor::write_int(&mut out, -65538);
        cbor::write_head(&mut out, cbor::UINT, self.ver);
        if let Some(w) = self.why {
            cbor::write_int(&mut out, -65539);
            cbor::write_head(&mut out, cbor::UINT, w);
        }
        if let Some(k) = self.kind {
            cbor::write_int(&mut out, -65540);
            cbor::write_head(&mut out, cbor::UINT, k as u64);
        }
        if let Some(with) = &self.with {
            cbor::write_int(&mut out, -65541);
            cbor::write_head(&mut out, cbor::ARRAY, with.len() as u64);
            for c in with {
                out.push(0x83);
                cbor::write_bytes(&mut out, &c.sub.0);
                cbor::write_head(&mut out, cbor::UINT, c.color.code());
                cbor::write_head(&mut out, cbor::UINT, c.ver);
            }
        }
        if let Some((idx, uri)) = &self.status {
            cbor::write_head(&mut out, cbor::UINT, 65535);
            cbor::write_head(&mut out, cbor::MAP, 1);
            cbor::write_text(&mut out, "status_list");
            cbor::write_head(&mut out, cbor::MAP, 2);
            cbor::write_text(&mut out, "idx");
            cbor::write_head(&mut out, cbor::UINT, u64::from(*idx));
            cbor::write_text(&mut out, "uri");
            cbor::write_text(&mut out, uri);
        }
        out
    }
}

/// Formats COSE bytes as a code's text form.
pub fn encode_text(cose: &[u8]) -> String {
    let mut s = String::with_capacity(PREFIX.len() + cose.len() * 3 / 2 + 2);
    s.push_str(PREFIX);
    s.push_str(&base45::encode(cose));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewClaims {
        NewClaims {
            iss: "CN-33".into(),
            sub: Sub([1; 16]),
            exp: 2000,
            iat: 1000,
            cti: vec![9; 8],
            color: Color::Yellow,
            ver: 3,
            why: Some(42),
            kind: Some(Kind::Permit),
            with: Some(vec![Companion {
                sub: Sub([2; 16]),
                color: Color::Red,
                ver: 1,
            }]),
            status: Some((7, "https://health.example/status-lists/CN-33-1".into())),
        }
    }

    #[test]
    fn claims_round_trip() {
        let enc = sample().encode();
        let c = parse_claims(&enc).unwrap();
        assert_eq!(c.iss, "CN-33");
        assert_eq!(c.color, Color::Yellow);
        assert_eq!(c.why(), Some(9));
        assert_eq!(c.kind, Kind::Permit);
        assert_eq!(c.with.unwrap().as_slice().len(), 1);
        let st = c.status.unwrap();
        assert_eq!((st.idx, st.name()), (7, "CN-33-1"));
    }

    #[test]
    fn list_names() {
        assert_eq!(
            list_name("https://a/status-lists/CN-33-x_1"),
            Some("CN-33-x_1")
        );
        assert_eq!(list_name("/status-lists/a"), Some("a"));
        assert_eq!(list_name("status-lists/a"), Some("a"));
        assert_eq!(list_name("https://a/status-lists/"), None);
        assert_eq!(list_name("https://a/statuslists/a"), None);
        assert_eq!(list_name("https://a/status-lists/a.b"), None);
        assert_eq!(list_name("https://a/status-lists/a/b"), None);
        let long = format!("/status-lists/{}", "a".repeat(65));
        assert_eq!(list_name(&long), None);
        let max = format!("/status-lists/{}", "a".repeat(64));
        assert!(list_name(&max).is_some());
        let huge = format!("https://{}/status-lists/a", "h".repeat(240));
        assert_eq!(list_name(&huge), None);
    }

    #[test]
    fn claim_bounds() {
        let mut c = sample();
        c.iat = c.exp;
        assert_eq!(
            parse_claims(&c.encode()),
            Err(MalformedError::IatNotBeforeExp)
        );
        let mut c = sample();
        c.cti = vec![0; 7];
        assert_eq!(parse_claims(&c.encode()), Err(MalformedError::BadClaim));
        c.cti = vec![0; 17];
        assert_eq!(parse_claims(&c.encode()), Err(MalformedError::BadClaim));
        c.cti = vec![0; 16];
        assert!(parse_claims(&c.encode()).is_ok());
        let mut c = sample();
        c.iss = "x".repeat(33);
        assert_eq!(parse_claims(&c.encode()), Err(MalformedError::BadClaim));
        c.iss = "x".repeat(32);
        assert!(parse_claims(&c.encode()).is_ok());
        let mut c = sample();
        c.with = Some(vec![Companion::default(); 9]);
        assert_eq!(parse_claims(&c.encode()), Err(MalformedError::BadClaim));
        c.with = Some(vec![Companion::default(); 8]);
        assert!(parse_claims(&c.encode()).is_ok());
    }

    #[test]
    fn text_form() {
        assert_eq!(decode_text("JKM1:"), Ok(vec![]));
        assert_eq!(decode_text("jkm1:BB8"), Err(MalformedError::Prefix));
        let long = format!("JKM1:{}", "0".repeat(MAX_TEXT_LEN));
        assert_eq!(decode_text(&long), Err(MalformedError::TooLong));
        assert_eq!(decode_text("JKM1:BB8").unwrap(), b"AB");
    }
}
