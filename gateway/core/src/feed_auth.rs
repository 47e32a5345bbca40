//! Authenticated feed events (`feed.md` revision 3, "Authenticated events"): the `mac`
//! of a `status`, `revoke_token` or `heartbeat` event is base64url of the first 16
//! bytes of HMAC-SHA256(feed key, M), M the event's fields joined in a fixed order
//! after `jkm-feed-1`. The issuing side writes it with [`FeedKey::mac`]; a gateway with
//! feed keys accepts such an event only if it matches one of them ([`FeedKeys`]).

use std::fmt::Write as _;

use ring::hmac;

use crate::b64;

/// Bytes of the HMAC kept in `mac`.
pub const MAC_LEN: usize = 16;

/// The domain of every message authenticated with a feed key.
const DOMAIN: &str = "jkm-feed-1";

/// One feed key: 32 bytes shared by the authority and the gateways.
pub struct FeedKey(hmac::Key);

impl FeedKey {
    pub fn new(bytes: &[u8; 32]) -> FeedKey {
        FeedKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// From a key file's text: 32 bytes of base64url on one line.
    pub fn from_b64(text: &str) -> Option<FeedKey> {
        b64::decode_array::<32>(text.trim()).map(|b| FeedKey::new(&b))
    }

    /// The first [`MAC_LEN`] bytes of HMAC-SHA256 over `message`.
    pub fn tag(&self, message: &[u8]) -> [u8; MAC_LEN] {
        let full = hmac::sign(&self.0, message);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full.as_ref()[..MAC_LEN]);
        out
    }

    /// A key for another purpose derived from this one (HMAC of `label`), so that what
    /// it protects needs no secret of its own on disk.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, label.as_bytes()).as_ref());
        out
    }

    /// The `mac` field of the event whose message is `message`.
    pub fn mac(&self, message: &Message) -> String {
        b64::encode(&self.tag(message.0.as_bytes()))
    }
}

/// The keys a gateway accepts (one, or two while a new key is rolled out).
#[derive(Default)]
pub struct FeedKeys(Vec<FeedKey>);

impl FeedKeys {
    pub fn new(keys: Vec<FeedKey>) -> FeedKeys {
        FeedKeys(keys)
    }

    /// No keys: events are accepted without `mac`.
    pub const fn none() -> FeedKeys {
        FeedKeys(Vec::new())
    }

    /// The keys, the one to write with first.
    pub fn keys(&self) -> &[FeedKey] {
        &self.0
    }

    /// Whether any key is configured (`feed_auth` in `/readyz`).
    pub fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `mac` (as the event carries it) matches `message` under one of the keys.
    /// Every key is tried and each tag compared in constant time, so the time taken says
    /// nothing about how much of a forged `mac` was right.
    pub fn check(&self, message: &Message, mac: Option<&str>) -> bool {
        let Some(given) = mac.and_then(b64::decode_array::<MAC_LEN>) else {
            return false;
        };
        let mut ok = 0u8;
        for k in &self.0 {
            let want = k.tag(message.0.as_bytes());
            let diff = want
                .iter()
                .zip(given.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            ok |= u8::from(diff == 0);
        }
        ok == 1
    }
}

/// The text M an event's `mac` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(String);

impl Message {
    /// `jkm-feed-1|status|SUB|COLOR|VER|AT|WHY` (WHY empty when absent).
    pub fn status(sub: &str, color: &str, ver: u64, at: &str, why: Option<u64>) -> Message {
        let mut m = String::with_capacity(DOMAIN.len() + sub.len() + at.len() + 40);
        let _ = write!(m, "{DOMAIN}|status|{sub}|{color}|{ver}|{at}|");
        if let Some(w) = why {
            let _ = write!(m, "{w}");
        }
        Message(m)
    }

    /// `jkm-feed-1|revoke_token|CTI|EXP`.
    pub fn revoke_token(cti: &str, exp: u64) -> Message {
        Message(format!("{DOMAIN}|revoke_token|{cti}|{exp}"))
    }

    /// `jkm-feed-1|heartbeat|AT`.
    pub fn heartbeat(at: &str) -> Message {
        Message(format!("{DOMAIN}|heartbeat|{at}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_spec_texts() {
        assert_eq!(
            Message::status("AAAA", "red", 7, "2026-01-01T00:00:00Z", Some(3)).as_str(),
            "jkm-feed-1|status|AAAA|red|7|2026-01-01T00:00:00Z|3"
        );
        assert_eq!(
            Message::status("AAAA", "green", 0, "2026-01-01T00:00:00Z", None).as_str(),
            "jkm-feed-1|status|AAAA|green|0|2026-01-01T00:00:00Z|"
        );
        assert_eq!(
            Message::revoke_token("AQID", 5).as_str(),
            "jkm-feed-1|revoke_token|AQID|5"
        );
        assert_eq!(
            Message::heartbeat("2026-01-01T00:00:00Z").as_str(),
            "jkm-feed-1|heartbeat|2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn mac_is_the_first_16_bytes_of_hmac_sha256() {
        // Expected tags computed independently: Python's
        // hmac.new(b"\x0b" * 32, m, hashlib.sha256).digest()[:16], base64url.
        let k = FeedKey::new(&[0x0b; 32]);
        let m = Message::heartbeat("2026-01-01T00:00:00Z");
        let mac = k.mac(&m);
        assert_eq!(mac, "u1iszqz8AlMJWo93q6SlbA");
        let s = Message::status(
            "AAAAAAAAAAAAAAAAAAAAAA",
            "red",
            7,
            "2026-01-01T00:00:00Z",
            Some(3),
        );
        assert_eq!(k.mac(&s), "_iBDjpXWuKia9qRFdRVWIw");
        let keys = FeedKeys::new(vec![FeedKey::new(&[1; 32]), FeedKey::new(&[0x0b; 32])]);
        assert!(keys.check(&m, Some(&mac)), "either key");
        assert!(!keys.check(&Message::heartbeat("2026-01-01T00:00:01Z"), Some(&mac)));
        assert!(!keys.check(&m, None));
        assert!(!keys.check(&m, Some("not base64!")));
        assert!(!FeedKeys::default().check(&m, Some(&mac)));
    }
}
