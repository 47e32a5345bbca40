//! A strict, zero-copy CBOR (RFC 8949) reader for the few shapes this crate decodes.
//!
//! Strict means: no indefinite lengths, no tags (the caller handles the one outer tag 18
//! itself), no reserved additional-information values, no two-byte simple values below
//! 32, text strings must be UTF-8, maps may not repeat a key, and containers may not nest
//! deeper than [`MAX_DEPTH`]. Integer encodings may be longer than needed (the signature
//! covers the bytes as sent). Every error is a [`CborError`]; nothing here panics on
//! input and every length is checked against the bytes that remain before it is used.

/// The deepest nesting allowed: arrays, maps and tags count, the outermost item is level 1.
pub const MAX_DEPTH: usize = 8;

/// Why bytes are not the strict CBOR we accept. All of these are `malformed` in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended inside an item.
    #[error("truncated CBOR")]
    Truncated,
    /// Indefinite-length item or a stray break code.
    #[error("indefinite-length CBOR item")]
    Indefinite,
    /// Additional information 28 to 30, or a two-byte simple value below 32.
    #[error("CBOR item not well-formed")]
    NotWellFormed,
    /// A tag where none is allowed.
    #[error("unexpected CBOR tag")]
    Tag,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A map holds the same key twice.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A text string that is not UTF-8.
    #[error("text string is not UTF-8")]
    BadUtf8,
    /// Bytes after the last item.
    #[error("trailing bytes after CBOR item")]
    Trailing,
    /// An item of another type or out of the expected range.
    #[error("unexpected CBOR type or value")]
    Unexpected,
}

/// Major types.
pub const UINT: u8 = 0;
/// Major type 1: a negative integer.
pub const NINT: u8 = 1;
/// Major type 2: a byte string.
pub const BYTES: u8 = 2;
/// Major type 3: a text string.
pub const TEXT: u8 = 3;
/// Major type 4: an array.
pub const ARRAY: u8 = 4;
/// Major type 5: a map.
pub const MAP: u8 = 5;
/// Major type 6: a tag.
pub const TAG: u8 = 6;
/// Major type 7: simple values and floats.
pub const SIMPLE: u8 = 7;

/// The head of a data item: its major type and argument (length, value, tag number or,
/// for major type 7, the simple value or the float's bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The major type (0 to 7).
    pub major: u8,
    /// The argument: a value, a length or a count.
    pub arg: u64,
}

/// A map key as compared for duplicates: integers by value (whatever their encoding
/// length), strings by content, anything else by its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// An integer: major type and value.
    Int(u8, u64),
    /// A string: major type and bytes.
    Str(u8, &'a [u8]),
    /// Anything else, as its encoded bytes.
    Other(&'a [u8]),
}

impl Key<'_> {
    /// The key as a signed integer label, when it is one.
    pub fn label(&self) -> Option<i128> {
        match *self {
            Key::Int(UINT, v) => Some(i128::from(v)),
            Key::Int(_, v) => Some(-1 - i128::from(v)),
            _ => None,
        }
    }
}

/// Tracks the keys of one map to refuse duplicates. Maps here are small (a claims map has
/// about ten entries), so a linear scan beats hashing; a map with many keys (only an
/// attacker sends one) is checked by sorting.
#[derive(Default)]
pub struct KeySet<'a> {
    keys: Vec<Key<'a>>,
}

impl<'a> KeySet<'a> {
    /// A writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        KeySet {
            keys: Vec::with_capacity(n),
        }
    }

    /// Records `key`, failing if it was seen before.
    pub fn insert(&mut self, key: Key<'a>) -> Result<(), CborError> {
        if self.keys.len() < 32 && self.keys.contains(&key) {
            return Err(CborError::DuplicateKey);
        }
        self.keys.push(key);
        Ok(())
    }

    /// Final check for maps too large for the linear scan.
    pub fn finish(mut self) -> Result<(), CborError> {
        if self.keys.len() <= 32 {
            return Ok(());
        }
        self.keys
            .sort_unstable_by(|a, b| key_order(a).cmp(&key_order(b)));
        if self.keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(CborError::DuplicateKey);
        }
        Ok(())
    }
}

fn key_order<'a>(k: &Key<'a>) -> (u8, u64, &'a [u8]) {
    match *k {
        Key::Int(m, v) => (m, v, &[]),
        Key::Str(m, s) => (m + 8, 0, s),
        Key::Other(s) => (16, 0, s),
    }
}

/// A cursor over one CBOR buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CborError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(CborError::Trailing)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if n > self.remaining() {
            return Err(CborError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        Ok(self.take(1)?[0])
    }

    /// Peeks at the next major type without consuming anything.
    pub fn peek_major(&self) -> Result<u8, CborError> {
        self.buf
            .get(self.pos)
            .map(|b| b >> 5)
            .ok_or(CborError::Truncated)
    }

    /// Reads the head of the next item.
    pub fn head(&mut self) -> Result<Head, CborError> {
        let ib = self.byte()?;
        let major = ib >> 5;
        let ai = ib & 0x1f;
        let arg = match ai {
            0..=23 => u64::from(ai),
            24 => {
                let v = self.byte()?;
                if major == SIMPLE && v < 32 {
                    return Err(CborError::NotWellFormed);
                }
                u64::from(v)
            }
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            28..=30 => return Err(CborError::NotWellFormed),
            _ => return Err(CborError::Indefinite),
        };
        Ok(Head { major, arg })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// The head of the next item, which must have major type `major`.
    fn expect(&mut self, major: u8) -> Result<u64, CborError> {
        let h = self.head()?;
        if h.major == TAG {
            return Err(CborError::Tag);
        }
        if h.major != major {
            return Err(CborError::Unexpected);
        }
        Ok(h.arg)
    }

    /// An unsigned integer.
    pub fn uint(&mut self) -> Result<u64, CborError> {
        self.expect(UINT)
    }

    /// A byte string's content.
    pub fn bytes(&mut self) -> Result<&'a [u8], CborError> {
        let n = self.expect(BYTES)?;
        self.take_len(n)
    }

    /// A text string's content, checked to be UTF-8.
    pub fn text(&mut self) -> Result<&'a str, CborError> {
        let n = self.expect(TEXT)?;
        let s = self.take_len(n)?;
        std::str::from_utf8(s).map_err(|_| CborError::BadUtf8)
    }

    fn take_len(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError::Truncated)?;
        self.take(n)
    }

    /// An array header; the count is bounded by the bytes left (each item takes one).
    pub fn array_len(&mut self) -> Result<usize, CborError> {
        let n = self.expect(ARRAY)?;
        self.count(n, 1)
    }

    /// A map header; the count is bounded by the bytes left (each entry takes two).
    pub fn map_len(&mut self) -> Result<usize, CborError> {
        let n = self.expect(MAP)?;
        self.count(n, 2)
    }

    fn count(&self, n: u64, min_bytes_each: u64) -> Result<usize, CborError> {
        if n.saturating_mul(min_bytes_each) > self.remaining() as u64 {
            return Err(CborError::Truncated);
        }
        Ok(n as usize)
    }

    /// Reads a map key (any well-formed item at `level`) for duplicate checks.
    pub fn key(&mut self, level: usize) -> Result<Key<'a>, CborError> {
        let start = self.pos;
        let mut probe = self.clone();
        let h = probe.head()?;
        match h.major {
            UINT | NINT => {
                *self = probe;
                Ok(Key::Int(h.major, h.arg))
            }
            BYTES => Ok(Key::Str(BYTES, self.bytes()?)),
            TEXT => Ok(Key::Str(TEXT, self.text()?.as_bytes())),
            _ => {
                self.skip(level)?;
                Ok(Key::Other(&self.buf[start..self.pos]))
            }
        }
    }

    /// Skips one well-formed item whose container level would be `level`, enforcing
    /// every strictness rule inside it.
    pub fn skip(&mut self, level: usize) -> Result<(), CborError> {
        let h = self.head()?;
        match h.major {
            UINT | NINT | SIMPLE => Ok(()),
            BYTES => self.take_len(h.arg).map(drop),
            TEXT => {
                let s = self.take_len(h.arg)?;
                std::str::from_utf8(s).map_err(|_| CborError::BadUtf8)?;
                Ok(())
            }
            ARRAY => {
                if level > MAX_DEPTH {
                    return Err(CborError::TooDeep);
                }
                let n = self.count(h.arg, 1)?;
                for _ in 0..n {
                    self.skip(level + 1)?;
                }
                Ok(())
            }
            MAP => {
                if level > MAX_DEPTH {
                    return Err(CborError::TooDeep);
                }
                let n = self.count(h.arg, 2)?;
                self.skip_map_entries(n, level)
            }
            _ => Err(CborError::Tag),
        }
    }

    /// Skips the `n` entries of a map at `level` (whose head was read), refusing
    /// duplicate keys.
    pub fn skip_map_entries(&mut self, n: usize, level: usize) -> Result<(), CborError> {
        let mut keys = KeySet::with_capacity(n.min(32));
        for _ in 0..n {
            keys.insert(self.key(level + 1)?)?;
            self.skip(level + 1)?;
        }
        keys.finish()
    }
}

/// Appends the head of an item (shortest form) to `out`; used to build the signed bytes
/// and by the issuing side.
pub fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Appends a signed integer.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_head(out, UINT, v as u64);
    } else {
        write_head(out, NINT, (-1 - v) as u64);
    }
}

/// Appends a byte string.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a text string.
pub fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(b: &[u8]) -> Result<(), CborError> {
        let mut r = Reader::new(b);
        r.skip(1)?;
        r.finish()
    }

    #[test]
    fn depth_limit_counts_containers_only() {
        // 8 nested arrays holding a scalar: levels 1..=8.
        let mut ok = vec![0x81; 7];
        ok.extend_from_slice(&[0x81, 0x01]);
        assert_eq!(skip_all(&ok), Ok(()));
        let mut deep = vec![0x81; 8];
        deep.extend_from_slice(&[0x81, 0x01]);
        assert_eq!(skip_all(&deep), Err(CborError::TooDeep));
    }

    #[test]
    fn refuses_indefinite_tags_and_reserved() {
        assert_eq!(skip_all(&[0x9f, 0xff]), Err(CborError::Indefinite));
        assert_eq!(
            skip_all(&[0x5f, 0x41, 0x00, 0xff]),
            Err(CborError::Indefinite)
        );
        assert_eq!(skip_all(&[0xc1, 0x01]), Err(CborError::Tag));
        assert_eq!(skip_all(&[0x1c]), Err(CborError::NotWellFormed));
        assert_eq!(skip_all(&[0xf8, 0x10]), Err(CborError::NotWellFormed));
        assert_eq!(skip_all(&[0xf8, 0x20]), Ok(()));
        assert_eq!(skip_all(&[0xff]), Err(CborError::Indefinite));
    }

    #[test]
    fn refuses_duplicates_by_value() {
        // {1: 0, 1: 0} and {1: 0, 0x18 0x01: 0} (same key, longer encoding).
        assert_eq!(
            skip_all(&[0xa2, 0x01, 0x00, 0x01, 0x00]),
            Err(CborError::DuplicateKey)
        );
        assert_eq!(
            skip_all(&[0xa2, 0x01, 0x00, 0x18, 0x01, 0x00]),
            Err(CborError::DuplicateKey)
        );
        assert_eq!(skip_all(&[0xa2, 0x01, 0x00, 0x20, 0x00]), Ok(())); // 1 and -1
        assert_eq!(
            skip_all(&[0xa2, 0x61, b'a', 0x00, 0x61, b'a', 0x00]),
            Err(CborError::DuplicateKey)
        );
        assert_eq!(
            skip_all(&[0xa2, 0x61, b'a', 0x00, 0x41, b'a', 0x00]),
            Ok(())
        );
    }

    #[test]
    fn large_map_duplicates_found_by_sorting() {
        let mut m = vec![0xb8, 40];
        for i in 0..40u8 {
            write_head(&mut m, UINT, u64::from(i % 39));
            m.push(0);
        }
        assert_eq!(skip_all(&m), Err(CborError::DuplicateKey));
    }

    #[test]
    fn lengths_bounded_by_input() {
        assert_eq!(
            skip_all(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert_eq!(
            skip_all(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert_eq!(skip_all(&[0x62, 0xff, 0xfe]), Err(CborError::BadUtf8));
        assert_eq!(skip_all(&[0x01, 0x01]), Err(CborError::Trailing));
    }
}
