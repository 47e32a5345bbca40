//! The status list's byte array (`offline.md`; the draft's encoding with `bits` = 2):
//! two bits per index, index 0 in the two least significant bits of byte 0. Values: 0
//! green (VALID), 1 red (INVALID), 2 yellow (SUSPENDED), 3 reserved (read as red).

use crate::status::Color;

/// Two bits per index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TwoBits {
    bytes: Vec<u8>,
}

impl TwoBits {
    /// Room for `len` indices, every one 0 (rounded up to a whole byte: four indices).
    pub fn zeros(len: usize) -> TwoBits {
        TwoBits {
            bytes: vec![0; len.div_ceil(4)],
        }
    }

    /// The array as inflated from a list's `lst`.
    pub fn from_bytes(bytes: Vec<u8>) -> TwoBits {
        TwoBits { bytes }
    }

    /// The bytes (what `lst` deflates).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The number of indices: the byte length × 4.
    pub fn len(&self) -> usize {
        self.bytes.len() * 4
    }

    /// Whether there is no index.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The value at `idx` (0 to 3), `None` at or beyond the length.
    #[inline]
    pub fn get(&self, idx: usize) -> Option<u8> {
        let b = self.bytes.get(idx / 4)?;
        Some((b >> ((idx % 4) * 2)) & 0b11)
    }

    /// Sets the value at `idx` (its low two bits); `false` at or beyond the length.
    pub fn set(&mut self, idx: usize, value: u8) -> bool {
        let Some(b) = self.bytes.get_mut(idx / 4) else {
            return false;
        };
        let shift = (idx % 4) * 2;
        *b = (*b & !(0b11 << shift)) | ((value & 0b11) << shift);
        true
    }
}

/// The color a list value stands for.
pub fn color_of(value: u8) -> Color {
    match value & 0b11 {
        0 => Color::Green,
        2 => Color::Yellow,
        _ => Color::Red,
    }
}

/// The list value of a color.
pub fn value_of(color: Color) -> u8 {
    match color {
        Color::Green => 0,
        Color::Red => 1,
        Color::Yellow => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_offline_md() {
        // 1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3 at indices 0 to 11 make hex c944f9.
        let values = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
        let mut b = TwoBits::zeros(values.len());
        for (i, v) in values.iter().enumerate() {
            assert!(b.set(i, *v));
        }
        assert_eq!(b.as_bytes(), [0xc9, 0x44, 0xf9]);
        let back = TwoBits::from_bytes(vec![0xc9, 0x44, 0xf9]);
        assert_eq!(back.len(), 12);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(back.get(i), Some(*v), "index {i}");
        }
        assert_eq!(back.get(12), None);
        assert!(!b.clone().set(12, 1));
        assert_eq!(color_of(3), Color::Red);
        for c in [Color::Green, Color::Yellow, Color::Red] {
            assert_eq!(color_of(value_of(c)), c);
        }
    }
}
