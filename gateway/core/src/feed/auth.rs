//! Authenticated feed events (`feed.md` revision 3, "Authenticated events"): the `mac`
//! of a `status`, `revoke_token` or `heartbeat` event is base64url of the first 16
//! bytes of HMAC-SHA256(feed key, M), M the event's fields joined in a fixed order
//! after `jkm-feed-1`. The issuing side writes it with [`FeedKey::mac`]; a gateway with
//! feed keys accepts such an event only if it matches one of them ([`FeedKeys`]).

use ring::hmac;

use crate::b64;

/// Bytes of the HMAC kept in `mac`.
pub const MAC_LEN: usize = 16;

/// The domain of every message authenticated with a feed key.
const DOMAIN: &str = "jkm-feed-1";

/// One feed key: 32 bytes shared by the authority and the gateways.
#[derive(Clone)]
pub struct FeedKey(hmac::Key);

impl FeedKey {
    /// A key of 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> FeedKey {
        FeedKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// From a key file's text: 32 bytes of base64url on one line.
    pub fn from_b64(text: &str) -> Option<FeedKey> {
        b64::decode_array::<32>(text.trim()).map(|b| FeedKey::new(&b))
    }

    /// The first [`MAC_LEN`] bytes of HMAC-SHA256 over the message M.
    pub fn tag(&self, message: &Message<'_>) -> [u8; MAC_LEN] {
        // The message is gathered on the stack and hashed in one call: ring's HMAC takes
        // each `update` at a fixed cost, and a status message comes in thirteen pieces
        // (measured: `feed_events/parse_status_lines_checking_mac`). A message longer
        // than the buffer (a long `cti`) is fed piece by piece.
        let mut buf = [0u8; 192];
        let mut len = 0usize;
        let mut fits = true;
        message.feed(|b| match buf.get_mut(len..len + b.len()) {
            Some(dst) if fits => {
                dst.copy_from_slice(b);
                len += b.len();
            }
            _ => fits = false,
        });
        let full = if fits {
            hmac::sign(&self.0, &buf[..len])
        } else {
            let mut ctx = hmac::Context::with_key(&self.0);
            message.feed(|b| ctx.update(b));
            ctx.sign()
        };
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
    pub fn mac(&self, message: &Message<'_>) -> String {
        b64::encode(&self.tag(message))
    }
}

/// The keys a gateway accepts (one, or two while a new key is rolled out).
#[derive(Default)]
pub struct FeedKeys(Vec<FeedKey>);

impl FeedKeys {
    /// The keys a feed is checked with (none: no mac needed; at most two are used).
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
    pub fn check(&self, message: &Message<'_>, mac: Option<&str>) -> bool {
        let Some(given) = mac.and_then(b64::decode_array::<MAC_LEN>) else {
            return false;
        };
        let mut ok = 0u8;
        for k in &self.0 {
            let want = k.tag(message);
            let diff = want
                .iter()
                .zip(given.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            ok |= u8::from(diff == 0);
        }
        ok == 1
    }
}

/// The text M an event's `mac` covers, as borrowed parts: the HMAC is fed piece by
/// piece, so checking an event allocates nothing (a replay checks ten million).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `jkm-feed-1|status|SUB|COLOR|VER|AT|WHY` (WHY empty when absent).
    Status {
        /// The pseudonym, base64url.
        sub: &'a str,
        /// The color's name.
        color: &'a str,
        /// The status version.
        ver: u64,
        /// The time, as the line writes it.
        at: &'a str,
        /// The reason code, when given.
        why: Option<u64>,
    },
    /// `jkm-feed-1|revoke_token|CTI|EXP`.
    RevokeToken {
        /// The token id, base64url.
        cti: &'a str,
        /// Its expiry.
        exp: u64,
    },
    /// `jkm-feed-1|heartbeat|AT`, or `jkm-feed-1|heartbeat|AT|PREV` with `prev`
    /// (revision 4).
    Heartbeat {
        /// The time, as the line writes it.
        at: &'a str,
        /// The position of the message published before it, when given.
        prev: Option<u64>,
    },
}

/// Decimal digits of `v` in `buf`, without allocating.
fn decimal(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

impl<'a> Message<'a> {
    /// The message of a `status` event.
    pub fn status(sub: &'a str, color: &'a str, ver: u64, at: &'a str, why: Option<u64>) -> Self {
        Message::Status {
            sub,
            color,
            ver,
            at,
            why,
        }
    }

    /// The message of a `revoke_token` event.
    pub fn revoke_token(cti: &'a str, exp: u64) -> Self {
        Message::RevokeToken { cti, exp }
    }

    /// The message of a `heartbeat` event (`prev`: the position of the message
    /// published before it, when the publisher knows it).
    pub fn heartbeat(at: &'a str, prev: Option<u64>) -> Self {
        Message::Heartbeat { at, prev }
    }

    /// Hands the bytes of M to `out`, in order.
    fn feed(&self, mut out: impl FnMut(&[u8])) {
        let mut digits = [0u8; 20];
        out(DOMAIN.as_bytes());
        match self {
            Message::Status {
                sub,
                color,
                ver,
                at,
                why,
            } => {
                for part in [
                    b"|status|".as_slice(),
                    sub.as_bytes(),
                    b"|",
                    color.as_bytes(),
                    b"|",
                ] {
                    out(part);
                }
                out(decimal(*ver, &mut digits));
                out(b"|");
                out(at.as_bytes());
                out(b"|");
                if let Some(w) = why {
                    out(decimal(*w, &mut digits));
                }
            }
            Message::RevokeToken { cti, exp } => {
                out(b"|revoke_token|");
                out(cti.as_bytes());
                out(b"|");
                out(decimal(*exp, &mut digits));
            }
            Message::Heartbeat { at, prev } => {
                out(b"|heartbeat|");
                out(at.as_bytes());
                if let Some(p) = prev {
                    out(b"|");
                    out(decimal(*p, &mut digits));
                }
            }
        }
    }

    /// M as text (for tests and for reading).
    pub fn text(&self) -> String {
        let mut v = Vec::new();
        self.feed(|b| v.extend_from_slice(b));
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_hmac_of_the_text_short_or_long() {
        let key = FeedKey::new(&[9; 32]);
        let long = "c".repeat(400);
        for m in [
            Message::status("AAAA", "red", 7, "2026-01-01T00:00:00Z", Some(3)),
            Message::heartbeat("2026-01-01T00:00:00Z", None),
            // Past the stack buffer: fed piece by piece.
            Message::revoke_token(&long, u64::MAX),
        ] {
            let want = hmac::sign(&key.0, m.text().as_bytes());
            assert_eq!(&key.tag(&m)[..], &want.as_ref()[..MAC_LEN], "{}", m.text());
        }
    }

    #[test]
    fn messages_are_the_spec_texts() {
        assert_eq!(
            Message::status("AAAA", "red", 7, "2026-01-01T00:00:00Z", Some(3)).text(),
            "jkm-feed-1|status|AAAA|red|7|2026-01-01T00:00:00Z|3"
        );
        assert_eq!(
            Message::status("AAAA", "green", 0, "2026-01-01T00:00:00Z", None).text(),
            "jkm-feed-1|status|AAAA|green|0|2026-01-01T00:00:00Z|"
        );
        assert_eq!(
            Message::revoke_token("AQID", 5).text(),
            "jkm-feed-1|revoke_token|AQID|5"
        );
        assert_eq!(
            Message::heartbeat("2026-01-01T00:00:00Z", None).text(),
            "jkm-feed-1|heartbeat|2026-01-01T00:00:00Z"
        );
        assert_eq!(
            Message::heartbeat("2026-01-01T00:00:00Z", Some(41)).text(),
            "jkm-feed-1|heartbeat|2026-01-01T00:00:00Z|41"
        );
    }

    #[test]
    fn mac_is_the_first_16_bytes_of_hmac_sha256() {
        // Expected tags computed independently: Python's
        // hmac.new(b"\x0b" * 32, m, hashlib.sha256).digest()[:16], base64url.
        let k = FeedKey::new(&[0x0b; 32]);
        let m = Message::heartbeat("2026-01-01T00:00:00Z", None);
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
        assert!(!keys.check(
            &Message::heartbeat("2026-01-01T00:00:01Z", None),
            Some(&mac)
        ));
        assert!(!keys.check(&m, None));
        assert!(!keys.check(&m, Some("not base64!")));
        assert!(!FeedKeys::default().check(&m, Some(&mac)));
    }
}
