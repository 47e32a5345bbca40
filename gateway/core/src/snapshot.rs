//! Snapshots (`feed.md`, "Positions, snapshots, staleness"): the whole state as of a feed
//! position, as one self-checking byte stream. This module encodes and decodes; the
//! caller owns the file (write to a temporary name, fsync, rename).
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! "JKMSNAP1"                                     magic and format version
//! u32 n, n bytes of JSON                         the [`Header`]: source, position, keys, policy
//! records, each a tag byte:
//!   1: sub[16] ver:u64 at:u64 color:u8           one status entry
//!   2: len:u8 cti[len] exp:u64                   one revoked token
//!   0                                            end of records
//! SHA-256 of every byte above (32 bytes), then nothing
//! ```
//!
//! [`read`] hands records to its sink *before* it reaches the checksum, so a caller that
//! must not half-apply a damaged file reads twice: once with a sink that ignores records
//! (the whole file is then known good), once to apply. Nothing in a snapshot is trusted
//! more than the feed: keys and the policy pass the same validation as when first loaded
//! (their root signatures were checked then; the checksum guards against damage, not
//! against someone who can write the state directory).

use std::io::{self, Read, Write};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::decide::Verifier;
use crate::id::ShortId;
use crate::policy::{Policy, PolicyError};
use crate::status::{Color, Cti, Status, Sub};
use crate::trust::{KeyError, TrustEntry, TrustedKey};

/// The first eight bytes of every snapshot (the last one is the format version).
pub const MAGIC: &[u8; 8] = b"JKMSNAP1";
/// Largest header accepted (keys and a policy: kilobytes in practice).
const MAX_HEADER: u32 = 16 << 20;
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
    /// Every issuer key in force.
    pub keys: Vec<TrustEntry>,
    /// Revoked key ids, base64url.
    pub revoked_kids: Vec<String>,
    /// The policy document in force (its JSON), if any.
    pub policy: Option<String>,
}

/// One record of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Status(Sub, Status),
    Revoked(Cti, u64),
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("not a snapshot (bad magic or format version)")]
    Magic,
    #[error("truncated")]
    Truncated,
    #[error("header refused: {0}")]
    Header(String),
    #[error("bad record at byte {0}")]
    Record(u64),
    #[error("checksum mismatch")]
    Checksum,
    #[error("bytes after the checksum")]
    Trailing,
    #[error("key refused: {0}")]
    Key(#[from] KeyError),
    #[error("policy refused: {0}")]
    Policy(#[from] PolicyError),
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Context,
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

/// The header for the verifier's state at `position`.
pub fn header_of(v: &Verifier, source: &str, position: u64, taken_at: u64) -> Header {
    let trust = v.trust();
    Header {
        source: source.to_owned(),
        position,
        taken_at,
        subjects: v.status().len() as u64,
        keys: trust.keys().map(|k| k.to_entry()).collect(),
        revoked_kids: trust.revoked().map(|k| b64::encode(k.as_bytes())).collect(),
        policy: v
            .policy()
            .map(|p| String::from_utf8_lossy(p.document()).into_owned()),
    }
}

/// Writes the verifier's state as of `header.position` to `w`; returns `w`.
///
/// Read the position *before* calling this while the feed keeps applying: the records
/// may then include later events, which is harmless because applying is idempotent and
/// resuming replays from the position.
pub fn write<W: Write>(v: &Verifier, header: &Header, w: W) -> io::Result<W> {
    let mut out = Hashing {
        inner: w,
        hash: Context::new(&SHA256),
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
    inner.write_all(hash.finish().as_ref())?;
    Ok(inner)
}

/// A reader that hashes what it hands out and counts bytes.
struct Checked<R> {
    inner: R,
    hash: Context,
    offset: u64,
}

impl<R: Read> Checked<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated,
            _ => SnapshotError::Io(e),
        })?;
        self.hash.update(buf);
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
/// then checks the checksum and that nothing follows it. Returns the header.
pub fn read<R: Read>(r: R, mut sink: impl FnMut(Record)) -> Result<Header, SnapshotError> {
    let mut c = Checked {
        inner: r,
        hash: Context::new(&SHA256),
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
                let mut id = [0u8; 255];
                c.exact(&mut id[..n])?;
                let cti = ShortId::new(&id[..n]).ok_or(SnapshotError::Record(at))?;
                let exp = c.u64()?;
                sink(Record::Revoked(cti, exp));
            }
            _ => return Err(SnapshotError::Record(at)),
        }
    }
    let expect = c.hash.clone().finish();
    let mut got = [0u8; 32];
    c.inner.read_exact(&mut got).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::Truncated,
        _ => SnapshotError::Io(e),
    })?;
    if got != expect.as_ref() {
        return Err(SnapshotError::Checksum);
    }
    let mut one = [0u8; 1];
    if c.inner.read(&mut one)? != 0 {
        return Err(SnapshotError::Trailing);
    }
    Ok(header)
}

/// Puts the header's keys, revoked kids and policy into `v` (a policy not newer than
/// the one in force is left out, as the feed would).
pub fn restore_header(v: &Verifier, h: &Header) -> Result<(), SnapshotError> {
    let mut keys = Vec::with_capacity(h.keys.len());
    for e in &h.keys {
        keys.push(TrustedKey::from_entry(e)?);
    }
    let mut revoked = Vec::with_capacity(h.revoked_kids.len());
    for k in &h.revoked_kids {
        let kid = b64::decode(k)
            .and_then(|b| ShortId::new(&b))
            .ok_or(KeyError::Kid)?;
        revoked.push(kid);
    }
    let policy = match &h.policy {
        Some(doc) => Some(Policy::from_json(doc.as_bytes())?),
        None => None,
    };
    for k in keys {
        v.apply(crate::feed_event::Event::KeyAdd(Box::new(k)))?;
    }
    for kid in revoked {
        v.apply(crate::feed_event::Event::KeyRevoke(kid))?;
    }
    if let Some(p) = policy {
        // Not newer than the configured one: the configured one stays, as on the feed.
        let _ = v.install_policy(p);
    }
    Ok(())
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
