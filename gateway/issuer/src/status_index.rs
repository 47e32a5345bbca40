//! The authority's places in its status list (`offline.md`, "The status claim"): each
//! subject gets one index in the list the first time it is seen, drawn at random among
//! the free indices (never in order of registration, so an index says nothing of who
//! holds it), and keeps it. Kept in `status-list.json` in the state directory, beside
//! the registry, owner-only; `gateway mint` writes the `status` claim from it and
//! `gateway publish status-list` builds the list from it and the registry's colors.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use gateway_core::{b64, Sub};
use serde::{Deserialize, Serialize};

use crate::IssueError;

/// The file's name in the state directory.
pub const FILE: &str = "status-list.json";

/// The list's URI and size, and every subject's place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatusIndex {
    /// The list's URI (`…/status-lists/NAME`, NAME beginning with the issuer's `iss`).
    pub uri: String,
    /// Indices in the list (a multiple of 4).
    pub size: u32,
    /// Pseudonym (base64url) → index.
    places: BTreeMap<String, u32>,
}

impl StatusIndex {
    /// A new list of `size` indices (rounded up to a multiple of 4) at `uri`.
    pub fn new(uri: &str, size: u32) -> Result<StatusIndex, IssueError> {
        if gateway_core::token::list_name(uri).is_none() || uri.len() > 255 {
            return Err(IssueError::key(
                "status list",
                "the URI must end in /status-lists/NAME (NAME: 1 to 64 of A-Z a-z 0-9 _ -)",
            ));
        }
        if size == 0 {
            return Err(IssueError::key("status list", "size must be above 0"));
        }
        Ok(StatusIndex {
            uri: uri.to_owned(),
            size: size.div_ceil(4) * 4,
            places: BTreeMap::new(),
        })
    }

    /// Reads `path`; `None` when there is no list configured.
    pub fn load(path: &Path) -> Result<Option<StatusIndex>, IssueError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| IssueError::file(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IssueError::file(path, e)),
        }
    }

    /// Writes it (a temporary file renamed over `path`, owner-only).
    pub fn save(&self, path: &Path) -> Result<(), IssueError> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(self).map_err(|e| IssueError::file(path, e))?;
        crate::owner_only::write(&tmp, &text).map_err(|e| IssueError::file(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| IssueError::file(path, e))
    }

    /// The subject's index: the one it has, else a free one drawn at random.
    pub fn place(&mut self, sub: &Sub) -> Result<u32, IssueError> {
        let name = b64::encode(&sub.0);
        if let Some(i) = self.places.get(&name) {
            return Ok(*i);
        }
        if self.places.len() >= self.size as usize {
            return Err(IssueError::key("status list", "every index is taken"));
        }
        let taken: HashSet<u32> = self.places.values().copied().collect();
        let size = self.size;
        let draw = || -> Result<u32, IssueError> {
            let mut b = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                .map_err(|_| IssueError::key("status list", "no randomness"))?;
            Ok((u64::from_le_bytes(b) % u64::from(size)) as u32)
        };
        // Random draws while the list is sparse; then the first free one after a random
        // start (still unrelated to the order of registration).
        let mut found = None;
        for _ in 0..64 {
            let i = draw()?;
            if !taken.contains(&i) {
                found = Some(i);
                break;
            }
        }
        let start = draw()?;
        let idx = found
            .or_else(|| {
                (0..self.size)
                    .map(|k| (start + k) % self.size)
                    .find(|i| !taken.contains(i))
            })
            .ok_or_else(|| IssueError::key("status list", "every index is taken"))?;
        self.places.insert(name, idx);
        Ok(idx)
    }

    /// Every subject placed: (pseudonym, index).
    pub fn places(&self) -> impl Iterator<Item = (&str, u32)> {
        self.places.iter().map(|(s, i)| (s.as_str(), *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_stable_distinct_and_not_in_order() {
        let mut x = StatusIndex::new("https://h.example/status-lists/CN-33-1", 1000).expect("ok");
        assert_eq!(x.size, 1000);
        let subs: Vec<Sub> = (0..500u16)
            .map(|i| {
                let mut s = [0u8; 16];
                s[..2].copy_from_slice(&i.to_be_bytes());
                Sub(s)
            })
            .collect();
        let first: Vec<u32> = subs.iter().map(|s| x.place(s).expect("room")).collect();
        let again: Vec<u32> = subs.iter().map(|s| x.place(s).expect("room")).collect();
        assert_eq!(first, again, "kept");
        let distinct: HashSet<u32> = first.iter().copied().collect();
        assert_eq!(distinct.len(), 500);
        assert!(
            first.windows(2).filter(|w| w[1] == w[0] + 1).count() < 50,
            "not in order"
        );
        assert!(StatusIndex::new("https://h.example/lists/x", 10).is_err());
        let mut tiny = StatusIndex::new("https://h.example/status-lists/CN-33-2", 4).expect("ok");
        for s in &subs[..4] {
            tiny.place(s).expect("room");
        }
        assert!(tiny.place(&subs[4]).is_err(), "full");
    }
}
