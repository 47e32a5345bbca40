//! One feed message (`feed.md`, "Events") → a typed [`Event`], with root-signed documents
//! verified before they become events. Pure: the caller reads the message and applies
//! the event ([`crate::Verifier::apply`]).
//!
//! Errors name a field or a category, never a value: feed errors are logged, and the
//! values are pseudonyms and token ids.

use std::borrow::Cow;

use serde::Deserialize;

use crate::policy::{Policy, PolicyError};
use crate::status::{Color, Cti, Status, Sub};
use crate::trust::{self, KeyError, Kid, RootDocError, RootKey, TrustEntry, TrustedKey};
use crate::{b64, feed_scan};

/// A feed event, checked and ready to apply.
#[derive(Debug, Clone)]
pub enum Event {
    /// Set the subject's status if `status.ver` is above the one held.
    Status {
        sub: Sub,
        status: Status,
        why: Option<u64>,
    },
    /// Deny this token until `exp`.
    RevokeToken { cti: Cti, exp: u64 },
    /// Add or replace an issuer key (root signature verified).
    KeyAdd(Box<TrustedKey>),
    /// Revoke an issuer key for good (root signature verified).
    KeyRevoke(Kid),
    /// A new policy (root signature verified; the version is checked on apply).
    Policy(Box<Policy>),
    /// The stream is alive.
    Heartbeat { at: i64 },
}

/// Why a message was skipped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("not a JSON event object (line {line}, column {column})")]
    Json { line: usize, column: usize },
    /// `type` is not one of the five.
    #[error("unknown event type")]
    UnknownType,
    /// A field missing or out of range.
    #[error("field `{0}` missing or invalid")]
    Field(&'static str),
    /// A `key` or `policy` event whose root signature fails, or no root key is configured.
    #[error("root-signed document refused: {0}")]
    Signature(#[from] RootDocError),
    /// A `key` or `policy` event arrived but no root key is configured.
    #[error("no root key configured for signed events")]
    NoRootKey,
    /// A signed `key` document with a bad key or shape.
    #[error("key document refused: {0}")]
    Key(#[from] KeyError),
    /// A signed `policy` document that is not a valid policy.
    #[error("policy document refused: {0}")]
    Policy(#[from] PolicyError),
}

impl FeedError {
    /// A fixed label for metrics (`rejected messages by kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::Json { .. } => "json",
            FeedError::UnknownType => "type",
            FeedError::Field(_) => "field",
            FeedError::Signature(_) | FeedError::NoRootKey => "signature",
            FeedError::Key(_) => "key",
            FeedError::Policy(_) => "policy",
        }
    }
}

impl From<serde_json::Error> for FeedError {
    fn from(e: serde_json::Error) -> Self {
        FeedError::Json {
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Every field of every event type, all optional: one flat struct parses faster than
/// an internally tagged enum (serde buffers those), and unknown fields are ignored.
/// Filled by `feed_scan` for the common shape, by serde otherwise.
#[derive(Deserialize, Default)]
pub(crate) struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(borrow, default)]
    pub sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub color: Option<Cow<'a, str>>,
    #[serde(default)]
    pub ver: Option<u64>,
    #[serde(default)]
    pub why: Option<u64>,
    #[serde(borrow, default)]
    pub at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub cti: Option<Cow<'a, str>>,
    #[serde(default)]
    pub exp: Option<u64>,
    #[serde(borrow, default)]
    pub signed: Option<Cow<'a, str>>,
}

/// The payload of a `key` event: a trust-list entry plus an action.
#[derive(Deserialize)]
struct KeyDoc {
    action: String,
    kid: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
}

fn field<T>(v: Option<T>, name: &'static str) -> Result<T, FeedError> {
    v.ok_or(FeedError::Field(name))
}

/// Parses one message. `root` verifies `key` and `policy` events.
pub fn parse(msg: &[u8], root: Option<&RootKey>) -> Result<Event, FeedError> {
    let raw = match feed_scan::event(msg) {
        Some(raw) => raw,
        None => serde_json::from_slice(msg)?,
    };
    event(raw, root)
}

/// [`parse`] through serde_json alone, without the fast path (to test and measure it).
#[doc(hidden)]
pub fn parse_generic(msg: &[u8], root: Option<&RootKey>) -> Result<Event, FeedError> {
    event(serde_json::from_slice(msg)?, root)
}

fn event(raw: RawEvent<'_>, root: Option<&RootKey>) -> Result<Event, FeedError> {
    match &*raw.ty {
        "status" => {
            let sub =
                b64::decode_array::<16>(&field(raw.sub, "sub")?).ok_or(FeedError::Field("sub"))?;
            let color =
                Color::from_name(&field(raw.color, "color")?).ok_or(FeedError::Field("color"))?;
            let ver = field(raw.ver, "ver")?;
            let at = trust::parse_time(&field(raw.at, "at")?)
                .and_then(|t| u64::try_from(t).ok())
                .ok_or(FeedError::Field("at"))?;
            Ok(Event::Status {
                sub: Sub(sub),
                status: Status { color, ver, at },
                why: raw.why,
            })
        }
        "revoke_token" => {
            let cti = b64::decode(&field(raw.cti, "cti")?)
                .filter(|b| (8..=16).contains(&b.len()))
                .and_then(|b| Cti::new(&b))
                .ok_or(FeedError::Field("cti"))?;
            Ok(Event::RevokeToken {
                cti,
                exp: field(raw.exp, "exp")?,
            })
        }
        "heartbeat" => {
            let at = trust::parse_time(&field(raw.at, "at")?).ok_or(FeedError::Field("at"))?;
            Ok(Event::Heartbeat { at })
        }
        "key" => {
            let root = root.ok_or(FeedError::NoRootKey)?;
            let payload = root.open(&field(raw.signed, "signed")?)?;
            parse_key_doc(&payload)
        }
        "policy" => {
            let root = root.ok_or(FeedError::NoRootKey)?;
            let payload = root.open(&field(raw.signed, "signed")?)?;
            Ok(Event::Policy(Box::new(Policy::from_json(&payload)?)))
        }
        _ => Err(FeedError::UnknownType),
    }
}

fn parse_key_doc(payload: &[u8]) -> Result<Event, FeedError> {
    let doc: KeyDoc = serde_json::from_slice(payload)?;
    match doc.action.as_str() {
        "revoke" => {
            let kid = b64::decode(&doc.kid)
                .and_then(|b| Kid::new(&b))
                .ok_or(FeedError::Key(KeyError::Kid))?;
            Ok(Event::KeyRevoke(kid))
        }
        "add" => {
            let entry = TrustEntry {
                kid: doc.kid,
                issuer: field(doc.issuer, "issuer")?,
                alg: field(doc.alg, "alg")?,
                public_key: field(doc.public_key, "public_key")?,
                not_before: field(doc.not_before, "not_before")?,
                not_after: field(doc.not_after, "not_after")?,
            };
            Ok(Event::KeyAdd(Box::new(TrustedKey::from_entry(&entry)?)))
        }
        _ => Err(FeedError::Field("action")),
    }
}

/// Writes a `status` event line (for the issuing side and tests).
pub fn status_line(sub: &Sub, color: Color, ver: u64, why: Option<u64>, at: i64) -> String {
    let mut v = serde_json::json!({
        "type": "status",
        "sub": b64::encode(&sub.0),
        "color": color.name(),
        "ver": ver,
        "at": trust::format_time(at),
    });
    if let Some(w) = why {
        v["why"] = w.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unsigned_type() {
        let line = status_line(&Sub([3; 16]), Color::Red, 4, Some(1), 1_780_000_000);
        match parse(line.as_bytes(), None).unwrap() {
            Event::Status { sub, status, why } => {
                assert_eq!(sub, Sub([3; 16]));
                assert_eq!(status.color, Color::Red);
                assert_eq!(status.ver, 4);
                assert_eq!(status.at, 1_780_000_000);
                assert_eq!(why, Some(1));
            }
            e => panic!("unexpected {e:?}"),
        }
        let e = parse(
            br#"{"type":"revoke_token","cti":"AQIDBAUGBwg","exp":5,"extra":[1]}"#,
            None,
        )
        .unwrap();
        assert!(matches!(e, Event::RevokeToken { exp: 5, .. }));
        let e = parse(
            br#"{"type":"heartbeat","at":"2026-01-01T00:00:00+08:00"}"#,
            None,
        )
        .unwrap();
        assert!(matches!(e, Event::Heartbeat { at: 1_767_196_800 }));
    }

    #[test]
    fn refuses_bad_messages_with_a_kind() {
        let kind = |m: &[u8]| parse(m, None).unwrap_err().kind();
        assert_eq!(kind(b"not json"), "json");
        assert_eq!(kind(br#"{"type":"status","sub":"AAAAAAAAAAAAAAAAAAAAAA","color":"red","ver":"x","at":"2026-01-01T00:00:00Z"}"#), "json");
        assert_eq!(kind(br#"{"type":"teleport"}"#), "type");
        assert_eq!(kind(br#"{"type":"status","sub":"AAAA","color":"red","ver":1,"at":"2026-01-01T00:00:00Z"}"#), "field");
        assert_eq!(kind(br#"{"type":"status","sub":"AAAAAAAAAAAAAAAAAAAAAA","color":"blue","ver":1,"at":"2026-01-01T00:00:00Z"}"#), "field");
        assert_eq!(
            kind(br#"{"type":"revoke_token","cti":"AQID","exp":5}"#),
            "field"
        );
        assert_eq!(kind(br#"{"type":"key","signed":"AAAA"}"#), "signature");
    }

    #[test]
    fn json_errors_do_not_echo_values() {
        let e = parse(br#"{"type":"status","sub":12345678901234}"#, None).unwrap_err();
        assert!(!e.to_string().contains("12345678901234"));
    }
}
