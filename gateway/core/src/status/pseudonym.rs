//! Subject pseudonyms (`token.md`): the first 16 bytes of
//! HMAC-SHA256(pseudonym key, `KIND ":" NUMBER`), NUMBER with all whitespace removed and
//! ASCII letters upper-cased. The document number lives only inside this computation.

use ring::hmac;

use crate::status::Sub;

/// Kinds of document a card check can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// A resident identity card.
    IdCard,
    /// A passport.
    Passport,
    /// A residence permit.
    Permit,
    /// A city card.
    CitizenCard,
}

impl CardKind {
    /// The kind's name in requests (`id_card`, …).
    pub fn name(self) -> &'static str {
        match self {
            CardKind::IdCard => "id_card",
            CardKind::Passport => "passport",
            CardKind::Permit => "permit",
            CardKind::CitizenCard => "citizen_card",
        }
    }

    /// The kind of a name in requests.
    pub fn from_name(s: &str) -> Option<CardKind> {
        match s {
            "id_card" => Some(CardKind::IdCard),
            "passport" => Some(CardKind::Passport),
            "permit" => Some(CardKind::Permit),
            "citizen_card" => Some(CardKind::CitizenCard),
            _ => None,
        }
    }
}

/// The 32-byte pseudonym key.
#[derive(Clone)]
pub struct PseudonymKey(hmac::Key);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// The key of 32 bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        PseudonymKey(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// From the file form: 32 bytes, base64url, one line.
    pub fn from_b64(text: &str) -> Option<Self> {
        crate::b64::decode_array::<32>(text.trim()).map(|k| Self::new(&k))
    }

    /// The pseudonym of a document.
    pub fn pseudonym(&self, kind: CardKind, number: &str) -> Sub {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(kind.name().as_bytes());
        ctx.update(b":");
        let mut buf = [0u8; 4];
        for c in number.chars().filter(|c| !c.is_whitespace()) {
            ctx.update(c.to_ascii_uppercase().encode_utf8(&mut buf).as_bytes());
        }
        let tag = ctx.sign();
        let mut sub = [0u8; 16];
        sub.copy_from_slice(&tag.as_ref()[..16]);
        Sub(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let k = PseudonymKey::new(&[1; 32]);
        let sub = k.pseudonym(CardKind::IdCard, "33010619800101001X");
        let hex: String = sub.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b82183eec133b6e09ff028b6f48c9349");
        assert_eq!(crate::b64::encode(&sub.0), "uCGD7sEztuCf8Ci29IyTSQ");
        assert_eq!(
            k.pseudonym(CardKind::IdCard, " 330106 19800101\t001x\n"),
            sub
        );
    }
}
