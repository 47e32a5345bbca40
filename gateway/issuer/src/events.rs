//! Feed event lines (`feed.md`, "Events"), written one way for every producer: the
//! `gateway feed` and `gateway publish` commands, the quick start's heartbeats, the load
//! tester's churn, the benchmarks and the tests. A [`Writer`] holds the feed key, if
//! there is one, and every line it writes carries its `mac` (revision 3). Root-signed
//! `key` and `policy` events come from [`crate::RootSigner`].

use gateway_core::feed_auth::{FeedKey, Message};
use gateway_core::feed_event;
use gateway_core::trust::format_time;
use gateway_core::{b64, Color, Sub};

/// Writes event lines, authenticated with the feed key when it has one.
#[derive(Clone, Copy)]
pub struct Writer<'k> {
    key: Option<&'k FeedKey>,
}

/// A writer without a feed key: lines without `mac`, for feeds that need none.
pub const PLAIN: Writer<'static> = Writer { key: None };

impl<'k> Writer<'k> {
    /// A writer with this feed key (or none).
    pub fn new(key: Option<&'k FeedKey>) -> Self {
        Writer { key }
    }

    /// Its feed key, if it has one.
    pub fn key(&self) -> Option<&'k FeedKey> {
        self.key
    }

    /// A `status` event: the subject's color and version from `at` (seconds since the
    /// epoch), with the reason code only when given.
    pub fn status(&self, sub: &Sub, color: Color, ver: u64, why: Option<u64>, at: i64) -> String {
        let (sub, at) = (b64::encode(&sub.0), format_time(at));
        let mut v = serde_json::json!({
            "type": "status",
            "sub": sub,
            "color": color.name(),
            "ver": ver,
            "at": at,
        });
        if let Some(w) = why {
            v["why"] = w.into();
        }
        if let Some(k) = self.key {
            v["mac"] = k
                .mac(&Message::status(&sub, color.name(), ver, &at, why))
                .into();
        }
        v.to_string()
    }

    /// A `status_list` event (`offline.md`): signed by an issuer key, no `mac`.
    pub fn status_list(&self, signed: &[u8]) -> String {
        serde_json::json!({"type": "status_list", "signed": b64::encode(signed)}).to_string()
    }

    /// A `status_list_update` event.
    pub fn status_list_update(&self, signed: &[u8]) -> String {
        serde_json::json!({"type": "status_list_update", "signed": b64::encode(signed)}).to_string()
    }

    /// A `revoke_token` event: the token `cti` is denied until `exp`.
    pub fn revoke(&self, cti: &[u8], exp: u64) -> String {
        let cti = b64::encode(cti);
        let mut v = serde_json::json!({"type": "revoke_token", "cti": cti, "exp": exp});
        if let Some(k) = self.key {
            v["mac"] = k.mac(&Message::revoke_token(&cti, exp)).into();
        }
        v.to_string()
    }

    /// A `heartbeat` event at `at`; `prev`, the position of the message published just
    /// before it, lets gateways see withheld messages (`feed.md` revision 4). The
    /// publishers ([`crate::publish::Publisher::heartbeat`]) know it.
    pub fn heartbeat(&self, at: i64, prev: Option<u64>) -> String {
        let at = format_time(at);
        let mut v = serde_json::json!({"type": "heartbeat", "at": at});
        if let Some(p) = prev {
            v["prev"] = p.into();
        }
        if let Some(k) = self.key {
            v["mac"] = k.mac(&Message::heartbeat(&at, prev)).into();
        }
        v.to_string()
    }

    /// A line from elsewhere (a file of events) as this writer would send it: `mac` added
    /// over the line's own fields where the event needs one and has none; other lines
    /// (`key`, `policy`, lines with a `mac`) as they are. `None` if the line is not an
    /// event the gateway would accept.
    pub fn sign(&self, line: &str) -> Option<String> {
        feed_event::parse(line.as_bytes(), None).ok()?;
        let Some(key) = self.key else {
            return Some(line.to_owned());
        };
        let mut v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("mac").is_some() {
            return Some(line.to_owned());
        }
        let text = |k: &str| v.get(k).and_then(|x| x.as_str());
        let message = match v.get("type").and_then(|t| t.as_str())? {
            "status" => Message::status(
                text("sub")?,
                text("color")?,
                v.get("ver")?.as_u64()?,
                text("at")?,
                v.get("why").and_then(|w| w.as_u64()),
            ),
            "revoke_token" => Message::revoke_token(text("cti")?, v.get("exp")?.as_u64()?),
            "heartbeat" => Message::heartbeat(text("at")?, v.get("prev").and_then(|p| p.as_u64())),
            _ => return Some(line.to_owned()),
        };
        v["mac"] = key.mac(&message).into();
        Some(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use gateway_core::feed_auth::FeedKeys;
    use gateway_core::feed_event::{parse, parse_with, Event};

    use super::*;

    #[test]
    fn what_is_written_is_what_the_gateway_reads() {
        let line = PLAIN.status(&Sub([3; 16]), Color::Red, 4, Some(1), 1_780_000_000);
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
        let e = parse(PLAIN.revoke(&[1; 12], 99).as_bytes(), None).unwrap();
        assert!(matches!(e, Event::RevokeToken { exp: 99, .. }));
        let e = parse(PLAIN.heartbeat(1_767_196_800, None).as_bytes(), None).unwrap();
        assert!(matches!(
            e,
            Event::Heartbeat {
                at: 1_767_196_800,
                prev: None
            }
        ));
    }

    #[test]
    fn with_feed_keys_only_events_with_a_good_mac_pass() {
        let key = FeedKey::new(&[7; 32]);
        let keys = FeedKeys::new(vec![FeedKey::new(&[8; 32]), FeedKey::new(&[7; 32])]);
        let other = FeedKey::new(&[9; 32]);
        let at = 1_780_000_000;
        let lines = |k: Option<&FeedKey>| {
            let w = Writer::new(k);
            [
                w.status(&Sub([3; 16]), Color::Red, 4, Some(1), at),
                w.status(&Sub([3; 16]), Color::Green, 5, None, at),
                w.revoke(&[1; 12], 99),
                w.heartbeat(at, Some(7)),
            ]
        };
        for line in lines(Some(&key)) {
            assert!(parse_with(line.as_bytes(), None, &keys).is_ok(), "{line}");
            // serde alone (keys reordered, spaces) gives the same verdict.
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            assert!(
                parse_with(pretty.as_bytes(), None, &keys).is_ok(),
                "{pretty}"
            );
        }
        for line in lines(None).into_iter().chain(lines(Some(&other))) {
            let e = parse_with(line.as_bytes(), None, &keys).unwrap_err();
            assert_eq!(e.kind(), "bad_mac", "{line}");
            assert!(
                parse(line.as_bytes(), None).is_ok(),
                "no keys: no mac needed"
            );
        }
        // A field changed after signing: the color, the version, the reason.
        let good = &lines(Some(&key))[0];
        for (from, to) in [
            ("\"red\"", "\"green\""),
            ("\"ver\":4", "\"ver\":40"),
            ("\"why\":1", "\"why\":2"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(&bad, good);
            assert_eq!(
                parse_with(bad.as_bytes(), None, &keys).unwrap_err().kind(),
                "bad_mac"
            );
        }
    }

    #[test]
    fn a_heartbeats_prev_is_covered_by_its_mac() {
        let key = FeedKey::new(&[7; 32]);
        let keys = FeedKeys::new(vec![FeedKey::new(&[7; 32])]);
        let good = Writer::new(Some(&key)).heartbeat(1_780_000_000, Some(7));
        assert!(good.contains("\"prev\":7"), "{good}");
        match parse_with(good.as_bytes(), None, &keys).unwrap() {
            Event::Heartbeat { prev, .. } => assert_eq!(prev, Some(7)),
            e => panic!("unexpected {e:?}"),
        }
        for bad in [
            good.replace("\"prev\":7", "\"prev\":8"),
            good.replace("\"prev\":7,", ""),
        ] {
            assert_ne!(bad, good);
            assert_eq!(
                parse_with(bad.as_bytes(), None, &keys).unwrap_err().kind(),
                "bad_mac",
                "{bad}"
            );
        }
    }

    #[test]
    fn sign_adds_a_mac_over_what_the_line_says() {
        let key = FeedKey::new(&[7; 32]);
        let keys = FeedKeys::new(vec![FeedKey::new(&[7; 32])]);
        let w = Writer::new(Some(&key));
        let at = 1_780_000_000;
        for line in [
            PLAIN.status(&Sub([3; 16]), Color::Red, 4, Some(1), at),
            PLAIN.status(&Sub([3; 16]), Color::Red, 4, None, at),
            r#"{"type":"status","sub":"AwMDAwMDAwMDAwMDAwMDAw","color":"red","ver":4,"at":"2026-05-28T20:26:40Z","why":null}"#.into(),
            PLAIN.revoke(&[1; 12], 99),
            PLAIN.heartbeat(at, Some(3)),
        ] {
            let signed = w.sign(&line).unwrap();
            assert!(parse_with(signed.as_bytes(), None, &keys).is_ok(), "{signed}");
            assert_eq!(PLAIN.sign(&line).as_deref(), Some(line.as_str()));
        }
        assert_eq!(w.sign("not json"), None);
        assert_eq!(w.sign(r#"{"type":"status"}"#), None);
        assert_eq!(PLAIN.sign("not json"), None);
    }
}
