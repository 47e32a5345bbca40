//! Snapshots (`feed.md`, "Positions, snapshots, staleness"): the whole state as of a feed
//! position, as one self-checking byte stream. This module encodes and decodes; the
//! caller owns the file (write to a temporary name, fsync, rename).
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! "JKMSNAP2"                                     magic and format version
//! u32 n, n bytes of JSON                         the [`Header`]: source, position, root-signed documents
//! records, each a tag byte:
//!   1: sub[16] ver:u64 at:u64 color:u8           one status entry
//!   2: len:u8 cti[len] exp:u64                   one revoked token
//!   0                                            end of records
//! HMAC-SHA256 of every byte above under a key derived from a feed key, or SHA-256
//! of them when the gateway has no feed key (32 bytes), then nothing
//! ```
//!
//! [`read`] hands records to its sink *before* it reaches the checksum, so a caller that
//! must not half-apply a damaged file reads it into memory once and reads those bytes
//! twice: once with a sink that ignores records (the whole file, every record's bounds
//! included, is then known good), once to apply (`feed.md` revision 4: checked whole,
//! from the one file that was checked, before any of it is applied).
//!
//! A snapshot is local state, not a trust root (feed.md revision 3): it carries the
//! root-signed documents themselves (every key event applied from the feed, and the
//! policy in force), which [`restore_header`] verifies against the root key again. With
//! a feed key, the file is authenticated with a key derived from it ([`SnapshotKey`]),
//! which does not live in the state directory: a forged or swapped snapshot then fails
//! like a damaged one. Without a feed key the trailer only detects damage.

use std::io::{self, Read, Write};

use ring::digest::{Context, SHA256};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::decide::Verifier;
use crate::feed_auth::FeedKey;
use crate::policy::{Policy, PolicyError};
use crate::status::id::ShortId;
use crate::status::{Color, Cti, Status, Sub};
use crate::trust::{KeyError, RootKey};

/// The first eight bytes of every snapshot (the last one is the format version).
pub const MAGIC: &[u8; 8] = b"JKMSNAP2";
/// Largest header accepted (keys and policies: kilobytes; status lists: about a
/// megabyte each for a province, at most 16 of them).
const MAX_HEADER: u32 = 64 << 20;
const TAG_END: u8 = 0;
const TAG_STATUS: u8 = 1;
const TAG_REVOKED: u8 = 2;

/// What a snapshot says about itself, and the small parts of the state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The feed this state came from (`file:/path` or `nats://host:port/STREAM`): a
    /// snapshot of another feed is not resumed.
    pub source: String,
    /// The last position applied.
    pub position: u64,
    /// When it was taken, seconds since the epoch.
    pub taken_at: u64,
    /// Status entries at the time (a hint for pre-sizing; the records are the truth).
    pub subjects: u64,
    /// The root-signed `key` documents applied from the feed, in order (base64url
    /// COSE_Sign1, as the events carried them). Keys of the configured trust list are
    /// not here: they come from the configuration at every boot.
    pub key_docs: Vec<String>,
    /// The root-signed policy in force (base64url COSE_Sign1), if it is signed.
    pub policy: Option<String>,
    /// The root-signed policy waiting for its `not_before` (`policy.md` revision 4), if
    /// one does: a gateway restarted before the time still switches at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_policy: Option<String>,
    /// The root-signed shadow policy, if one is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_policy: Option<String>,
    /// The status lists held for offline gates (`offline.md`), each with its applied
    /// updates, as published (base64url).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_lists: Vec<SnapshotList>,
    /// The identity of the stream this state came from (`feed.md` revision 4): for
    /// NATS its name and creation time, for a file feed its device, inode and the
    /// SHA-256 of its first line. A snapshot of another stream, or of one recreated
    /// under the same name, is not used. `None` in snapshots of earlier versions, which
    /// are therefore not used either.
    #[serde(default)]
    pub stream: Option<String>,
}

/// One status list of a snapshot: the list and its applied updates in order, each the
/// COSE bytes as published (base64url).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotList {
    /// The list.
    pub list: String,
    /// Its updates, `n` = 1, 2, …
    pub updates: Vec<String>,
}

/// The key a snapshot is authenticated with, derived from a feed key (feed.md: a
/// snapshot is refused when it fails this check, like a damaged one).
#[derive(Clone, Debug)]
pub struct SnapshotKey(hmac::Key);

/// Label of the derivation, so the key serves snapshots and nothing else.
const SNAPSHOT_LABEL: &str = "jkm-snapshot-1";

impl SnapshotKey {
    /// The snapshot key of a feed key (`HMAC(feed key, "jkm-snapshot-1")`).
    pub fn derive(feed: &FeedKey) -> SnapshotKey {
        SnapshotKey(hmac::Key::new(
            hmac::HMAC_SHA256,
            &feed.derive(SNAPSHOT_LABEL),
        ))
    }
}

/// The trailer being computed: SHA-256, or HMAC-SHA256 under a snapshot key.
enum Trailer {
    Digest(Context),
    Mac(hmac::Context),
}

impl Trailer {
    fn new(key: Option<&SnapshotKey>) -> Trailer {
        match key {
            Some(k) => Trailer::Mac(hmac::Context::with_key(&k.0)),
            None => Trailer::Digest(Context::new(&SHA256)),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Trailer::Digest(c) => c.update(b),
            Trailer::Mac(c) => c.update(b),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Trailer::Digest(c) => c.finish().as_ref().to_vec(),
            Trailer::Mac(c) => c.sign().as_ref().to_vec(),
        }
    }
}

/// One record of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A subject's status.
    Status(Sub, Status),
    /// A revoked token and its expiry.
    Revoked(Cti, u64),
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("read failed: {0}")]
    /// The file could not be read or written.
    Io(#[from] io::Error),
    #[error("not a snapshot (bad magic or format version)")]
    /// Not a snapshot of this format.
    Magic,
    #[error("truncated")]
    /// The file ends early.
    Truncated,
    #[error("header refused: {0}")]
    /// The header is not what it should be.
    Header(String),
    #[error("bad record at byte {0}")]
    /// A record is not what it should be (its index).
    Record(u64),
    #[error("checksum mismatch (damaged, or not written with this gateway's feed key)")]
    /// The trailer does not match.
    Checksum,
    #[error("root-signed document refused: {0}")]
    /// A signed document it carries does not verify.
    Signed(String),
    #[error("bytes after the checksum")]
    /// Bytes after the trailer.
    Trailing,
    #[error("key refused: {0}")]
    /// A key document it carries is refused.
    Key(#[from] KeyError),
    #[error("policy refused: {0}")]
    /// The policy it carries is refused.
    Policy(#[from] PolicyError),
    #[error("document refused: {0}")]
    /// A document it carries is refused when applied.
    Apply(#[from] crate::decide::ApplyError),
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Trailer,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The header for the verifier's state at `position` of the stream `stream` (its
/// identity, when known).
pub fn header_of(
    v: &Verifier,
    source: &str,
    stream: Option<&str>,
    position: u64,
    taken_at: u64,
) -> Header {
    let rules = v.rules();
    let signed = |p: Option<&Policy>| p.and_then(|p| p.signed().map(str::to_owned));
    Header {
        source: source.to_owned(),
        position,
        taken_at,
        subjects: v.status().len() as u64,
        key_docs: v.key_docs(),
        policy: signed(rules.in_force()),
        pending_policy: signed(rules.pending()),
        shadow_policy: signed(rules.shadow()),
        status_lists: v
            .lists()
            .entries()
            .iter()
            .map(|e| SnapshotList {
                list: crate::b64::encode(e.list_bytes()),
                updates: e
                    .updates_after(0)
                    .iter()
                    .map(|u| crate::b64::encode(u))
                    .collect(),
            })
            .collect(),
        stream: stream.map(str::to_owned),
    }
}

/// Writes the verifier's state as of `header.position` to `w`; returns `w`.
///
/// Read the position *before* calling this while the feed keeps applying: the records
/// may then include later events, which is harmless because applying is idempotent and
/// resuming replays from the position.
/// With `key`, the trailer authenticates the file (see the module docs).
pub fn write<W: Write>(
    v: &Verifier,
    header: &Header,
    key: Option<&SnapshotKey>,
    w: W,
) -> io::Result<W> {
    let mut out = Hashing {
        inner: w,
        hash: Trailer::new(key),
    };
    out.write_all(MAGIC)?;
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&l| l <= MAX_HEADER)
        .ok_or_else(|| io::Error::other("snapshot header too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&json)?;
    let mut failed = None;
    let mut rec = [0u8; 34];
    v.status().for_each(|sub, st| {
        if failed.is_some() {
            return;
        }
        rec[0] = TAG_STATUS;
        rec[1..17].copy_from_slice(&sub.0);
        rec[17..25].copy_from_slice(&st.ver.to_le_bytes());
        rec[25..33].copy_from_slice(&st.at.to_le_bytes());
        rec[33] = st.color as u8;
        if let Err(e) = out.write_all(&rec) {
            failed = Some(e);
        }
    });
    v.revoked_tokens().for_each(|cti, exp| {
        if failed.is_some() {
            return;
        }
        let id = cti.as_bytes();
        let mut r = Vec::with_capacity(2 + id.len() + 8);
        r.push(TAG_REVOKED);
        r.push(id.len() as u8);
        r.extend_from_slice(id);
        r.extend_from_slice(&exp.to_le_bytes());
        if let Err(e) = out.write_all(&r) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.write_all(&[TAG_END])?;
    let Hashing { mut inner, hash } = out;
    inner.write_all(&hash.finish())?;
    Ok(inner)
}

/// A reader that hashes what it hands out (under every key it may have been written
/// with) and counts bytes.
struct Checked<R> {
    inner: R,
    hashes: Vec<Trailer>,
    offset: u64,
}

impl<R: Read> Checked<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated,
            _ => SnapshotError::Io(e),
        })?;
        for h in &mut self.hashes {
            h.update(buf);
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads a snapshot, handing each record to `sink` as it goes (see the module docs),
/// then checks the trailer and that nothing follows it. Returns the header. With
/// `keys`, the trailer must be the HMAC under one of them; without, the SHA-256.
pub fn read<R: Read>(
    r: R,
    keys: &[SnapshotKey],
    mut sink: impl FnMut(Record),
) -> Result<Header, SnapshotError> {
    let hashes = if keys.is_empty() {
        vec![Trailer::new(None)]
    } else {
        keys.iter().map(|k| Trailer::new(Some(k))).collect()
    };
    let mut c = Checked {
        inner: r,
        hashes,
        offset: 0,
    };
    let mut magic = [0u8; 8];
    c.exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let mut len = [0u8; 4];
    c.exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(SnapshotError::Header("too large".into()));
    }
    let mut json = vec![0u8; len as usize];
    c.exact(&mut json)?;
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| SnapshotError::Header(e.to_string()))?;
    loop {
        let at = c.offset;
        match c.u8()? {
            TAG_END => break,
            TAG_STATUS => {
                let mut sub = [0u8; 16];
                c.exact(&mut sub)?;
                let ver = c.u64()?;
                let time = c.u64()?;
                let color =
                    Color::from_code(u64::from(c.u8()?)).ok_or(SnapshotError::Record(at))?;
                // The bounds the same event would have to meet (feed.md).
                if ver >= crate::feed_event::VER_LIMIT {
                    return Err(SnapshotError::Record(at));
                }
                sink(Record::Status(
                    Sub(sub),
                    Status {
                        color,
                        ver,
                        at: time,
                    },
                ));
            }
            TAG_REVOKED => {
                let n = usize::from(c.u8()?);
                if !(8..=16).contains(&n) {
                    return Err(SnapshotError::Record(at));
                }
                let mut id = [0u8; 255];
                c.exact(&mut id[..n])?;
                let cti = ShortId::new(&id[..n]).ok_or(SnapshotError::Record(at))?;
                let exp = c.u64()?;
                sink(Record::Revoked(cti, exp));
            }
            _ => return Err(SnapshotError::Record(at)),
        }
    }
    let mut got = [0u8; 32];
    c.inner.read_exact(&mut got).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::Truncated,
        _ => SnapshotError::Io(e),
    })?;
    // Every candidate compared in full, in constant time.
    let mut matched = 0u8;
    for h in std::mem::take(&mut c.hashes) {
        let want = h.finish();
        let diff = want
            .iter()
            .zip(got.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        matched |= u8::from(diff == 0 && want.len() == got.len());
    }
    if matched == 0 {
        return Err(SnapshotError::Checksum);
    }
    let mut one = [0u8; 1];
    if c.inner.read(&mut one)? != 0 {
        return Err(SnapshotError::Trailing);
    }
    Ok(header)
}

/// The header's root-signed documents, verified and ready to apply.
pub struct Documents {
    events: Vec<crate::feed_event::Event>,
    /// In force, pending, shadow: offered in that order.
    policies: Vec<Policy>,
    /// Status lists and their updates, shape-checked (their issuers' signatures are
    /// checked when applied, against the trust list the key documents make).
    lists: Vec<crate::feed_event::Event>,
}

/// Verifies every root-signed document of the header against `root`, applying nothing.
pub fn verify_documents(h: &Header, root: &RootKey) -> Result<Documents, SnapshotError> {
    let refused = |e: crate::feed_event::FeedError| SnapshotError::Signed(e.to_string());
    let mut events = Vec::with_capacity(h.key_docs.len());
    for doc in &h.key_docs {
        events.push(crate::feed_event::key_event(root, doc).map_err(refused)?);
    }
    let mut policies = Vec::with_capacity(3);
    for doc in [&h.policy, &h.pending_policy, &h.shadow_policy]
        .into_iter()
        .flatten()
    {
        policies.push(Policy::from_signed(doc, root)?);
    }
    let mut lists = Vec::new();
    for l in &h.status_lists {
        let bad = |what: &str| SnapshotError::Signed(format!("status list: {what}"));
        let decode = |text: &str| {
            let b = crate::b64::decode(text).ok_or_else(|| bad("not base64url"))?;
            crate::offline::list::Envelope::parse(&b).map_err(|e| bad(&e.to_string()))?;
            Ok::<_, SnapshotError>(bytes::Bytes::from(b))
        };
        if l.updates.len() > crate::offline::store::MAX_UPDATES {
            return Err(bad("too many updates"));
        }
        lists.push(crate::feed_event::Event::StatusList(decode(&l.list)?));
        for u in &l.updates {
            lists.push(crate::feed_event::Event::StatusListUpdate(decode(u)?));
        }
    }
    Ok(Documents {
        events,
        policies,
        lists,
    })
}

/// Puts verified documents into `v` at `now` (a policy not newer than the ones held is
/// left out, as the feed would; a pending one whose time has passed takes force).
pub fn restore_documents(v: &Verifier, docs: Documents, now: u64) -> Result<(), SnapshotError> {
    for e in docs.events {
        v.apply(e, now)?;
    }
    for p in docs.policies {
        // Not newer than the configured one: the configured one stays, as on the feed.
        let _ = v.offer_policy(p, now);
    }
    for e in docs.lists {
        // A list past its `exp` (or whose key has gone) is dropped, not a failure.
        let _ = v.apply(e, now);
    }
    Ok(())
}

/// [`verify_documents`] then [`restore_documents`]: nothing is applied unless every
/// document passes.
pub fn restore_header(
    v: &Verifier,
    h: &Header,
    root: &RootKey,
    now: u64,
) -> Result<(), SnapshotError> {
    restore_documents(v, verify_documents(h, root)?, now)
}

/// Applies one record.
pub fn restore_record(v: &Verifier, r: Record) {
    match r {
        Record::Status(sub, st) => {
            v.status().apply(sub, st);
        }
        Record::Revoked(cti, exp) => v.revoked_tokens().revoke(cti, exp),
    }
}
