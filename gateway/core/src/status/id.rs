//! Short binary identifiers (`kid`, `cti`: 1 to 16 bytes) held inline, so maps keyed by
//! them allocate nothing per entry.

/// One to sixteen bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortId {
    len: u8,
    bytes: [u8; 16],
}

impl ShortId {
    /// `None` unless 1 to 16 bytes.
    pub fn new(b: &[u8]) -> Option<ShortId> {
        if b.is_empty() || b.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Some(ShortId {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// base64url without padding, as ids are written in JSON.
    pub fn to_b64(&self) -> String {
        crate::b64::encode(self.as_bytes())
    }
}

impl std::fmt::Debug for ShortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShortId({})", self.to_b64())
    }
}
