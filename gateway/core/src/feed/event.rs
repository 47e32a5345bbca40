//! One feed message (`feed.md`, "Events") → a typed [`Event`], with root-signed documents
//! verified before they become events. Pure: the caller reads the message and applies
//! the event ([`crate::Verifier::apply`]).
//!
//! Errors name a field or a category, never a value: feed errors are logged, and the
//! values are pseudonyms and token ids.

use serde::Deserialize;

use crate::b64;
use crate::feed::scan::{self, RawEvent};
use crate::feed_auth::{FeedKeys, Message};
use crate::policy::{Policy, PolicyError};
use crate::status::{Color, Cti, Status, Sub};
use crate::trust::{self, KeyError, Kid, RootDocError, RootKey, TrustEntry, TrustedKey};

/// A feed event, checked and ready to apply.
#[derive(Debug, Clone)]
pub enum Event {
    /// Set the subject's status if `status.ver` is above the one held.
    Status {
        /// Whose status.
        sub: Sub,
        /// The color and version, and when it was set.
        status: Status,
        /// The reason code, when the event carries one.
        why: Option<u64>,
    },
    /// Deny this token until `exp`.
    RevokeToken {
        /// The token id.
        cti: Cti,
        /// Until when (its expiry).
        exp: u64,
    },
    /// Add or replace an issuer key (root signature verified); `signed` is the root's
    /// document as it came, kept for snapshots.
    KeyAdd {
        /// The key, checked.
        key: Box<TrustedKey>,
        /// The root's document as it came.
        signed: String,
    },
    /// Revoke an issuer key for good (root signature verified).
    KeyRevoke {
        /// The key id.
        kid: Kid,
        /// The root's document as it came.
        signed: String,
    },
    /// A new policy (root signature verified; the version is checked on apply).
    Policy(Box<Policy>),
    /// A status list token (`offline.md`): the COSE bytes as signed, checked against the
    /// trust list when applied.
    StatusList(bytes::Bytes),
    /// A status list update, likewise.
    StatusListUpdate(bytes::Bytes),
    /// The stream is alive (a sign of life only under the rules of `feed.md` revision
    /// 4, which the gateway applies: see its feed module).
    Heartbeat {
        /// When the authority sent it.
        at: i64,
        /// The position of the message published just before it, when the publisher
        /// wrote it (covered by the `mac`).
        prev: Option<u64>,
    },
}

/// Why a message was skipped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("not a JSON event object (line {line}, column {column})")]
    Json {
        /// Where serde stopped: line.
        line: usize,
        /// And column.
        column: usize,
    },
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
    /// With feed keys: a `status`, `revoke_token` or `heartbeat` event whose `mac` is
    /// missing or matches none of them.
    #[error("mac missing or wrong")]
    BadMac,
}

impl FeedError {
    /// A fixed label for metrics (`rejected messages by kind`).
    /// Every value [`FeedError::kind`] can take.
    pub const KINDS: [&'static str; 7] = [
        "json",
        "type",
        "field",
        "signature",
        "key",
        "policy",
        "bad_mac",
    ];

    /// The kind of failure, as the metrics label it (`json`, `type`, `field`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::Json { .. } => "json",
            FeedError::UnknownType => "type",
            FeedError::Field(_) => "field",
            FeedError::Signature(_) | FeedError::NoRootKey => "signature",
            FeedError::Key(_) => "key",
            FeedError::Policy(_) => "policy",
            FeedError::BadMac => "bad_mac",
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
    /// Optional, rising per kid: an add for a kid already known with another public key
    /// applies only if its `seq` is above the known one's (see `Verifier::apply`).
    #[serde(default)]
    seq: Option<u64>,
}

fn field<T>(v: Option<T>, name: &'static str) -> Result<T, FeedError> {
    v.ok_or(FeedError::Field(name))
}

/// A `status` at this `ver` or above is malformed (feed.md revision 3): no producer's
/// mistake may place a subject beyond every later version.
pub const VER_LIMIT: u64 = 1 << 53;

/// No feed keys: events are accepted without `mac`.
const NO_KEYS: FeedKeys = FeedKeys::none();

/// Parses one message without feed keys. `root` verifies `key` and `policy` events.
pub fn parse(msg: &[u8], root: Option<&RootKey>) -> Result<Event, FeedError> {
    parse_with(msg, root, &NO_KEYS)
}

/// Parses one message; when `keys` has any, a `status`, `revoke_token` or `heartbeat`
/// event must carry a `mac` that matches one of them.
pub fn parse_with(msg: &[u8], root: Option<&RootKey>, keys: &FeedKeys) -> Result<Event, FeedError> {
    let raw = match scan::event(msg) {
        Some(raw) => raw,
        None => serde_json::from_slice(msg)?,
    };
    event(raw, root, keys)
}

/// [`parse`] through serde_json alone, without the fast path (to test and measure it).
#[doc(hidden)]
pub fn parse_generic(msg: &[u8], root: Option<&RootKey>) -> Result<Event, FeedError> {
    event(serde_json::from_slice(msg)?, root, &NO_KEYS)
}

/// Checks the `mac` of an event whose fields are valid, when there are keys.
fn authentic<'a>(
    keys: &FeedKeys,
    mac: Option<&str>,
    message: impl FnOnce() -> Message<'a>,
) -> Result<(), FeedError> {
    if keys.enabled() && !keys.check(&message(), mac) {
        return Err(FeedError::BadMac);
    }
    Ok(())
}

fn event(raw: RawEvent<'_>, root: Option<&RootKey>, keys: &FeedKeys) -> Result<Event, FeedError> {
    let mac = raw.mac.as_deref();
    match &*raw.ty {
        "status" => {
            let sub_text = field(raw.sub.as_deref(), "sub")?;
            let sub = b64::decode_array::<16>(sub_text).ok_or(FeedError::Field("sub"))?;
            let color_text = field(raw.color.as_deref(), "color")?;
            let color = Color::from_name(color_text).ok_or(FeedError::Field("color"))?;
            let ver = field(raw.ver, "ver").and_then(|v| {
                if v < VER_LIMIT {
                    Ok(v)
                } else {
                    Err(FeedError::Field("ver"))
                }
            })?;
            let at_text = field(raw.at.as_deref(), "at")?;
            let at = trust::parse_time(at_text)
                .and_then(|t| u64::try_from(t).ok())
                .ok_or(FeedError::Field("at"))?;
            authentic(keys, mac, || {
                Message::status(sub_text, color_text, ver, at_text, raw.why)
            })?;
            Ok(Event::Status {
                sub: Sub(sub),
                status: Status { color, ver, at },
                why: raw.why,
            })
        }
        "revoke_token" => {
            let cti_text = field(raw.cti.as_deref(), "cti")?;
            let cti = b64::decode(cti_text)
                .filter(|b| (8..=16).contains(&b.len()))
                .and_then(|b| Cti::new(&b))
                .ok_or(FeedError::Field("cti"))?;
            let exp = field(raw.exp, "exp")?;
            authentic(keys, mac, || Message::revoke_token(cti_text, exp))?;
            Ok(Event::RevokeToken { cti, exp })
        }
        "heartbeat" => {
            let at_text = field(raw.at.as_deref(), "at")?;
            let at = trust::parse_time(at_text).ok_or(FeedError::Field("at"))?;
            authentic(keys, mac, || Message::heartbeat(at_text, raw.prev))?;
            Ok(Event::Heartbeat { at, prev: raw.prev })
        }
        "key" => {
            let root = root.ok_or(FeedError::NoRootKey)?;
            key_event(root, &field(raw.signed, "signed")?)
        }
        "status_list" | "status_list_update" => {
            let signed = field(raw.signed.as_deref(), "signed")?;
            let bytes = b64::decode(signed)
                .filter(|b| !b.is_empty())
                .ok_or(FeedError::Field("signed"))?;
            let bytes = bytes::Bytes::from(bytes);
            Ok(if &*raw.ty == "status_list" {
                Event::StatusList(bytes)
            } else {
                Event::StatusListUpdate(bytes)
            })
        }
        "policy" => {
            let root = root.ok_or(FeedError::NoRootKey)?;
            let signed = field(raw.signed, "signed")?;
            let payload = root.open(&signed)?;
            let policy = Policy::from_json(&payload)?.with_signed(&signed);
            Ok(Event::Policy(Box::new(policy)))
        }
        _ => Err(FeedError::UnknownType),
    }
}

/// A root-signed key document (the `signed` of a `key` event) as an event, its
/// signature verified; also how a snapshot's key documents are checked again.
pub fn key_event(root: &RootKey, signed: &str) -> Result<Event, FeedError> {
    let payload = root.open(signed)?;
    let doc: KeyDoc = serde_json::from_slice(&payload)?;
    let signed = signed.trim().to_owned();
    match doc.action.as_str() {
        "revoke" => {
            let kid = b64::decode(&doc.kid)
                .and_then(|b| Kid::new(&b))
                .ok_or(FeedError::Key(KeyError::Kid))?;
            Ok(Event::KeyRevoke { kid, signed })
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
            let mut key = TrustedKey::from_entry(&entry)?;
            key.seq = doc.seq;
            Ok(Event::KeyAdd {
                key: Box::new(key),
                signed,
            })
        }
        _ => Err(FeedError::Field("action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status line as the issuing side writes it (`gateway_issuer::events`).
    fn status_line(ver: u64) -> String {
        format!(
            r#"{{"type":"status","sub":"{}","color":"red","ver":{ver},"at":"{}","why":1}}"#,
            b64::encode(&[3; 16]),
            trust::format_time(1_780_000_000)
        )
    }

    #[test]
    fn parses_each_unsigned_type() {
        let line = status_line(4);
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
        assert!(matches!(
            e,
            Event::Heartbeat {
                at: 1_767_196_800,
                prev: None
            }
        ));
        let e = parse(
            br#"{"type":"heartbeat","at":"2026-01-01T00:00:00+08:00","prev":41}"#,
            None,
        )
        .unwrap();
        assert!(matches!(e, Event::Heartbeat { prev: Some(41), .. }));
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
    fn a_version_at_2_pow_53_or_more_is_malformed() {
        let ok = status_line(VER_LIMIT - 1);
        assert!(parse(ok.as_bytes(), None).is_ok());
        for ver in [VER_LIMIT, u64::MAX] {
            let line = status_line(ver);
            assert_eq!(parse(line.as_bytes(), None).unwrap_err().kind(), "field");
        }
    }

    #[test]
    fn json_errors_do_not_echo_values() {
        let e = parse(br#"{"type":"status","sub":12345678901234}"#, None).unwrap_err();
        assert!(!e.to_string().contains("12345678901234"));
    }
}
