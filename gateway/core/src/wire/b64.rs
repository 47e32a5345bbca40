//! base64url without padding, the one binary-to-text form of the spec's JSON.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Encodes bytes.
pub fn encode(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Decodes text; padding, other alphabets and non-canonical trailing bits are refused.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Decodes text that must hold exactly `N` bytes.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Anything longer than N bytes' worth of text cannot fit: refuse before decoding.
    if s.len() > (N * 4).div_ceil(3) {
        return None;
    }
    decode(s)?.try_into().ok()
}
