//! Base45 (RFC 9285), decoding only on the hot path and encoding for the issuing side.
//!
//! Strict: every character must be in the alphabet (space included, nothing trimmed), a
//! length of 1 mod 3 is refused, and so is a triple above 65535 or a final pair above 255.

/// The 45 characters, in value order.
pub const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Why a Base45 text did not decode. The spec folds all of these into `malformed`;
/// they are kept apart for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base45Error {
    /// A byte outside the 45-character alphabet.
    #[error("character outside the Base45 alphabet")]
    BadCharacter,
    /// The length is 1 mod 3, which no byte string encodes to.
    #[error("Base45 length is 1 mod 3")]
    BadLength,
    /// A group of three characters above 65535 or a final pair above 255.
    #[error("Base45 group out of range")]
    OutOfRange,
}

const INVALID: u8 = 0xff;

/// Character → value, `INVALID` elsewhere. Built at compile time.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The number of bytes `text_len` characters decode to (for a valid length).
pub fn decoded_len(text_len: usize) -> usize {
    text_len / 3 * 2 + usize::from(text_len % 3 == 2)
}

/// Decodes `text` into `out`, so the hot path can reuse a buffer. On error the content
/// of `out` is unspecified.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), Base45Error> {
    out.clear();
    if text.len() % 3 == 1 {
        return Err(Base45Error::BadLength);
    }
    // Size once, then write in place: no per-group capacity checks. Every valid value is
    // below 45, so one test of the high bit over the lookups finds a bad character.
    out.resize(decoded_len(text.len()), 0);
    let mut groups = text.chunks_exact(3);
    for (c, o) in (&mut groups).zip(out.chunks_exact_mut(2)) {
        let (a, b, d) = (
            DECODE[c[0] as usize],
            DECODE[c[1] as usize],
            DECODE[c[2] as usize],
        );
        if (a | b | d) & 0x80 != 0 {
            return Err(Base45Error::BadCharacter);
        }
        let n = u32::from(a) + u32::from(b) * 45 + u32::from(d) * 45 * 45;
        if n > 0xffff {
            return Err(Base45Error::OutOfRange);
        }
        o.copy_from_slice(&(n as u16).to_be_bytes());
    }
    if let [a, b] = *groups.remainder() {
        let (a, b) = (DECODE[a as usize], DECODE[b as usize]);
        if (a | b) & 0x80 != 0 {
            return Err(Base45Error::BadCharacter);
        }
        let n = u32::from(a) + u32::from(b) * 45;
        if n > 0xff {
            return Err(Base45Error::OutOfRange);
        }
        if let Some(last) = out.last_mut() {
            *last = n as u8;
        }
    }
    Ok(())
}

/// Decodes `text` into a new vector.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Base45Error> {
    let mut out = Vec::new();
    decode_into(text, &mut out)?;
    Ok(out)
}

/// Encodes bytes as Base45 text.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    let mut push = |mut n: u32, digits: usize| {
        for _ in 0..digits {
            out.push(char::from(ALPHABET[(n % 45) as usize]));
            n /= 45;
        }
    };
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        push(u32::from(c[0]) << 8 | u32::from(c[1]), 3);
    }
    if let [b] = *chunks.remainder() {
        push(u32::from(b), 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode(b"QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(decode(b"").unwrap(), b"");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(decode(b"GGW"), Err(Base45Error::OutOfRange)); // 65536
        assert_eq!(decode(b"FGW").unwrap(), [0xff, 0xff]); // 65535
        assert_eq!(decode(b"A"), Err(Base45Error::BadLength));
        assert_eq!(decode(b"AB#"), Err(Base45Error::BadCharacter));
        assert_eq!(decode(b"ab8"), Err(Base45Error::BadCharacter));
        assert_eq!(decode(b"BB8\n"), Err(Base45Error::BadLength));
        assert_eq!(decode(b"BB8\t\n"), Err(Base45Error::BadCharacter));
    }

    #[test]
    fn final_pair_bound() {
        // 255 = 30 + 5 * 45: "U5" is the largest final pair.
        assert_eq!(encode(&[0xff]), "U5");
        assert_eq!(decode(b"U5").unwrap(), [0xff]);
        // 256 = 31 + 5 * 45 → "V5".
        assert_eq!(decode(b"V5"), Err(Base45Error::OutOfRange));
    }

    #[test]
    fn round_trips_every_length() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for n in 0..bytes.len() {
            let text = encode(&bytes[..n]);
            assert_eq!(decode(text.as_bytes()).unwrap(), &bytes[..n]);
        }
    }
}
