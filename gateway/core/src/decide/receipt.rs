//! Receipts (`api.md` revision 4, "Receipts"): 12 bytes that a person turned away takes
//! to the complaint desk, who can check that the gateway gave it, and to whom. No state:
//! the receipt is the record.
//!
//! The bytes: the decision time (4, seconds, big-endian), the venue's position in the
//! policy table (1: `policy::venue_code`, 255 for a category a policy adds), the reason (1: [`Reason::ALL`] order, `malformed` 1 … `red_code` 14),
//! then the first 6 bytes of HMAC-SHA256(R, those 6 bytes ‖ sub), R being the receipt
//! key HMAC-SHA256(feed key, `jkm-receipt-1`). Shown as Crockford base32 of the 96 bits
//! and 4 zero bits: 20 characters in 4 groups of 5, upper case. No allocation: a
//! [`Receipt`] holds its 23 bytes of text.

use ring::hmac;

use crate::decide::reason::Reason;
use crate::feed_auth::FeedKey;
use crate::status::Sub;

/// Label of the receipt key's derivation from the feed key.
pub const RECEIPT_LABEL: &str = "jkm-receipt-1";

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The key receipts are made and checked with (R of `api.md`). The desk holds it, never
/// the feed key, which could forge events.
#[derive(Clone)]
pub struct ReceiptKey {
    key: hmac::Key,
    bytes: [u8; 32],
}

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

impl ReceiptKey {
    /// R from a feed key.
    pub fn derive(feed: &FeedKey) -> ReceiptKey {
        ReceiptKey::from_bytes(feed.derive(RECEIPT_LABEL))
    }

    /// R as given to the desk.
    pub fn from_bytes(bytes: [u8; 32]) -> ReceiptKey {
        ReceiptKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            bytes,
        }
    }

    /// R's 32 bytes (for `gateway receipt key`).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The 12 bytes of a receipt for `sub` (16 zero bytes for a `malformed` code).
    pub fn make(&self, time: u64, venue: u8, reason: Reason, sub: &Sub) -> [u8; 12] {
        let mut out = [0u8; 12];
        let t = u32::try_from(time).unwrap_or(u32::MAX);
        out[..4].copy_from_slice(&t.to_be_bytes());
        out[4] = venue;
        out[5] = reason_code(reason);
        let tag = self.tag(&out[..6], sub);
        out[6..].copy_from_slice(&tag);
        out
    }

    /// Whether the 12 bytes were made under this key for `sub` (constant time).
    pub fn check(&self, bytes: &[u8; 12], sub: &Sub) -> bool {
        let mut m = [0u8; 22];
        m[..6].copy_from_slice(&bytes[..6]);
        m[6..].copy_from_slice(&sub.0);
        let full = hmac::sign(&self.key, &m);
        let diff = full.as_ref()[..6]
            .iter()
            .zip(&bytes[6..])
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        diff == 0
    }

    fn tag(&self, head: &[u8], sub: &Sub) -> [u8; 6] {
        let mut m = [0u8; 22];
        m[..6].copy_from_slice(head);
        m[6..].copy_from_slice(&sub.0);
        let full = hmac::sign(&self.key, &m);
        let mut tag = [0u8; 6];
        tag.copy_from_slice(&full.as_ref()[..6]);
        tag
    }
}

/// The reason's byte (`api.md`): its place in [`Reason::ALL`] (`ok` 0, never in a
/// receipt).
pub fn reason_code(r: Reason) -> u8 {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8
}

/// The reason of a byte, if it names one.
pub fn reason_of(code: u8) -> Option<Reason> {
    Reason::ALL
        .get(usize::from(code))
        .copied()
        .filter(|r| *r != Reason::Ok)
}

/// A receipt as shown: `XXXXX-XXXXX-XXXXX-XXXXX`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Receipt([u8; 23]);

impl Receipt {
    /// The text form of 12 receipt bytes.
    pub fn encode(bytes: &[u8; 12]) -> Receipt {
        let mut out = [b'-'; 23];
        // 96 bits and 4 zero bits, 5 bits a character.
        let mut acc: u128 = 0;
        for b in bytes {
            acc = (acc << 8) | u128::from(*b);
        }
        acc <<= 4;
        let mut pos = 0;
        for i in 0..20 {
            let shift = 95 - 5 * i;
            let v = ((acc >> shift) & 0x1f) as usize;
            if i > 0 && i % 5 == 0 {
                pos += 1;
            }
            out[pos] = ALPHABET[v];
            pos += 1;
        }
        Receipt(out)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII from the alphabet and dashes is ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Reads a receipt as a person may type it: any case, with or without dashes (and
    /// spaces), `O` for `0`, `I` or `L` for `1` (Crockford). `None` unless it is 20
    /// characters of the alphabet whose last 4 bits are zero.
    pub fn decode(text: &str) -> Option<[u8; 12]> {
        let mut acc: u128 = 0;
        let mut n = 0;
        for c in text.bytes() {
            let c = c.to_ascii_uppercase();
            let v = match c {
                b'-' | b' ' => continue,
                b'O' => 0,
                b'I' | b'L' => 1,
                _ => ALPHABET.iter().position(|a| *a == c)? as u128,
            };
            n += 1;
            if n > 20 {
                return None;
            }
            acc = (acc << 5) | v;
        }
        if n != 20 || acc & 0xf != 0 {
            return None;
        }
        acc >>= 4;
        let mut out = [0u8; 12];
        for (i, b) in out.iter_mut().enumerate() {
            *b = (acc >> (88 - 8 * i)) as u8;
        }
        Some(out)
    }
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Receipt({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The worked example of `api.md` revision 4.
    #[test]
    fn the_worked_example() {
        let key = ReceiptKey::derive(&FeedKey::new(&[2; 32]));
        let mut sub = [0u8; 16];
        let h = "b82183eec133b6e09ff028b6f48c9349";
        for (i, b) in sub.iter_mut().enumerate() {
            *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
        }
        let sub = Sub(sub);
        assert_eq!(reason_code(Reason::RedCode), 14);
        let bytes = key.make(1_780_000_000, 7, Reason::RedCode, &sub);
        assert_eq!(hex(&bytes), "6a18a500070efa730264b852");
        let r = Receipt::encode(&bytes);
        assert_eq!(r.as_str(), "D8CAA-0071V-X760K-4Q190");
        assert!(key.check(&bytes, &sub));
        assert!(!key.check(&bytes, &Sub([0; 16])), "another person's");
        let other = ReceiptKey::derive(&FeedKey::new(&[3; 32]));
        assert!(!other.check(&bytes, &sub), "another key");
    }

    #[test]
    fn typed_forgivingly() {
        let want = Receipt::decode("D8CAA-0071V-X760K-4Q190").unwrap();
        for typed in [
            "d8caa-0071v-x760k-4q190",
            "D8CAA0071VX760K4Q190",
            "D8CAA-OO7IV-X76OK-4Q19O",
            "d8caa 0071v x760k 4ql90",
        ] {
            assert_eq!(Receipt::decode(typed), Some(want), "{typed}");
        }
        for bad in [
            "D8CAA-0071V-X760K-4Q19",
            "D8CAA-0071V-X760K-4Q1900",
            "D8CAA-0071V-X760K-4Q19U",
            "D8CAA-0071V-X760K-4Q191",
            "",
        ] {
            assert_eq!(Receipt::decode(bad), None, "{bad}");
        }
        assert_eq!(reason_of(14), Some(Reason::RedCode));
        assert_eq!(reason_of(0), None);
        assert_eq!(reason_of(15), None);
    }

    #[test]
    fn every_byte_string_round_trips() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let mut b = [0u8; 12];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            assert_eq!(Receipt::decode(Receipt::encode(&b).as_str()), Some(b));
        }
    }
}
