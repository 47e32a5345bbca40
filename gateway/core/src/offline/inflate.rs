//! zlib (RFC 1950) inflate with a bound (`offline.md`: a list's `lst` at most 64 MiB, an
//! update's `changes` at most 16 MiB). The output grows by doubling up to the bound and
//! no further, so a bomb is refused having allocated at most the bound, never its own
//! size; the Adler-32 checksum is checked, and bytes after the stream are refused.

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Most bytes a status list's `lst` inflates to (256 Mi indices).
pub const MAX_LIST_BYTES: usize = 64 << 20;
/// Most bytes an update's `changes` inflates to.
pub const MAX_CHANGES_BYTES: usize = 16 << 20;

/// Why a zlib stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// Not a zlib stream, cut short, or its checksum does not match.
    #[error("not a whole zlib stream")]
    Corrupt,
    /// It inflates beyond the bound.
    #[error("inflates beyond {0} bytes")]
    TooLarge(usize),
    /// Bytes follow the end of the stream.
    #[error("bytes after the zlib stream")]
    Trailing,
}

/// Inflates the zlib stream `input` to at most `max` bytes.
pub fn zlib(input: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    // One byte of room beyond the bound tells "exactly max" from "more than max".
    let cap = max.saturating_add(1);
    let mut out = vec![0u8; input.len().saturating_mul(4).max(64).min(cap)];
    let mut state = Box::<DecompressorOxide>::default();
    let (mut in_pos, mut out_pos) = (0usize, 0usize);
    loop {
        let rest = input.get(in_pos..).ok_or(InflateError::Corrupt)?;
        let (status, read, wrote) = decompress(&mut state, rest, &mut out, out_pos, flags);
        in_pos += read;
        out_pos += wrote;
        if out_pos > max {
            return Err(InflateError::TooLarge(max));
        }
        match status {
            TINFLStatus::Done => {
                if in_pos != input.len() {
                    return Err(InflateError::Trailing);
                }
                out.truncate(out_pos);
                return Ok(out);
            }
            TINFLStatus::HasMoreOutput => {
                if out.len() >= cap {
                    return Err(InflateError::TooLarge(max));
                }
                let grown = out.len().saturating_mul(2).min(cap);
                out.resize(grown, 0);
            }
            _ => return Err(InflateError::Corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
    }

    #[test]
    fn round_trips_and_checks_the_bound_exactly() {
        let data = vec![7u8; 10_000];
        let z = deflate(&data);
        assert_eq!(zlib(&z, 10_000), Ok(data.clone()));
        assert_eq!(zlib(&z, 9_999), Err(InflateError::TooLarge(9_999)));
        assert_eq!(zlib(&deflate(&[]), 0), Ok(Vec::new()));
    }

    #[test]
    fn a_bomb_is_refused_at_the_bound() {
        // 256 MiB of zeros compress to about 256 KiB; refused at 1 MiB.
        let z = deflate(&vec![0u8; 256 << 20]);
        assert!(z.len() < 1 << 20, "{}", z.len());
        assert_eq!(zlib(&z, 1 << 20), Err(InflateError::TooLarge(1 << 20)));
    }

    #[test]
    fn corruption_cuts_and_trailing_bytes_are_refused() {
        let z = deflate(b"status lists are mostly zeros");
        let mut bad_sum = z.clone();
        let n = bad_sum.len();
        bad_sum[n - 1] ^= 1;
        assert_eq!(zlib(&bad_sum, 1 << 20), Err(InflateError::Corrupt));
        assert_eq!(zlib(&z[..n - 3], 1 << 20), Err(InflateError::Corrupt));
        let mut trailing = z.clone();
        trailing.push(0);
        assert_eq!(zlib(&trailing, 1 << 20), Err(InflateError::Trailing));
        assert_eq!(zlib(b"", 1 << 20), Err(InflateError::Corrupt));
        assert_eq!(
            zlib(b"not zlib at all", 1 << 20),
            Err(InflateError::Corrupt)
        );
    }
}
