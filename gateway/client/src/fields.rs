//! What the lean HTTP/2 and HTTP/3 clients share of HPACK (RFC 7541) and QPACK (RFC
//! 9204): prefixed integers, string literals, and the few Huffman codes a status uses.
//! Enough to write literal field lines and to read an answer's `:status`; neither lean
//! client keeps a dynamic table.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// An HPACK/QPACK prefixed integer (RFC 7541 §5.1): `first` holds the pattern bits
/// above the `n`-bit prefix.
pub(crate) fn prefixed(b: &mut BytesMut, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        b.put_u8(first | v as u8);
        return;
    }
    b.put_u8(first | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        b.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    b.put_u8(rest as u8);
}

/// Reads a prefixed integer of `n` bits from the front of `b`.
pub(crate) fn read_prefixed(b: &mut Bytes, n: u32) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut v = usize::from(*b.first()?) & max;
    b.advance(1);
    if v < max {
        return Some(v);
    }
    let mut shift = 0u32;
    loop {
        let x = *b.first()?;
        b.advance(1);
        v = v.checked_add(usize::from(x & 0x7f).checked_shl(shift)?)?;
        if x & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Decimal digits in HPACK's Huffman code (RFC 7541 Appendix B): `0`–`2` are the 5-bit
/// codes 0–2, `3`–`9` the 6-bit codes 0x19–0x1f; the end is padded with ones.
pub(crate) fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    let take = |i: usize, n: usize| (i..i + n).fold(0u8, |v, j| (v << 1) | bit(j));
    let total = bytes.len() * 8;
    let mut i = 0;
    let mut out = String::new();
    while i < total {
        let left = total - i;
        if left < 8 && (i..total).all(|j| bit(j) == 1) {
            break;
        }
        if left >= 5 && take(i, 5) <= 2 {
            out.push(char::from(b'0' + take(i, 5)));
            i += 5;
        } else if left >= 6 && (0x19..=0x1f).contains(&take(i, 6)) {
            out.push(char::from(b'3' + take(i, 6) - 0x19));
            i += 6;
        } else {
            return None;
        }
    }
    Some(out)
}

/// A string literal (`H` bit, 7-bit prefixed length, the octets) holding a status: plain
/// or Huffman-coded digits.
pub(crate) fn status_literal(b: &mut Bytes) -> Option<u16> {
    let huffman = *b.first()? & 0x80 != 0;
    let len = read_prefixed(b, 7)?;
    if b.len() < len {
        return None;
    }
    let value = b.split_to(len);
    let digits = if huffman {
        huffman_digits(&value)?
    } else {
        std::str::from_utf8(&value).ok()?.to_owned()
    };
    if digits.len() != 3 {
        return None;
    }
    digits.parse().ok()
}

/// A xorshift generator of test inputs: the decoders' never-panic tests feed it bytes.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prefixed_integers_round_trip() {
        for n in [3u32, 4, 5, 6, 7, 8] {
            for v in [0usize, 1, 6, 7, 30, 127, 128, 300, 16_384, 1 << 20] {
                let mut b = BytesMut::new();
                prefixed(&mut b, 0, n, v);
                assert_eq!(read_prefixed(&mut b.freeze(), n), Some(v), "n={n} v={v}");
            }
        }
    }

    #[test]
    fn statuses_are_read_plain_or_huffman_coded() {
        assert_eq!(huffman_digits(&[0x68, 0x01]).as_deref(), Some("401"));
        assert_eq!(
            status_literal(&mut Bytes::from_static(b"\x03429")),
            Some(429)
        );
        assert_eq!(
            status_literal(&mut Bytes::from_static(&[0x82, 0x68, 0x01])),
            Some(401)
        );
        for bad in [
            &b"\x0342"[..],
            b"\x02ab",
            b"\x044290",
            &[0x81, 0xff][..],
            b"",
        ] {
            assert_eq!(
                status_literal(&mut Bytes::copy_from_slice(bad)),
                None,
                "{bad:?}"
            );
        }
    }
}
