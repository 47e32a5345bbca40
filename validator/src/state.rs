//! What DIR holds (`cli.md`: owner-only, replaced atomically): `bundle.ndjson`, the
//! lines the validator accepted in the bundle's own form, and `root.pub`, the root key
//! it was installed with, so `check` needs nothing else. Loading applies the lines
//! through the core's checks again: a file changed on disk is checked like a bundle.

use std::path::Path;

use gateway_core::feed_event::{self, Event};
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{Settings, Verifier};

use crate::Error;

/// The accepted bundle.
pub const BUNDLE: &str = "bundle.ndjson";
/// The root key.
pub const ROOT: &str = "root.pub";

/// What applying a bundle's lines did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Lines applied.
    pub accepted: usize,
    /// Policy lines among them.
    pub policies: usize,
    /// (line number, why) of every line refused.
    pub refused: Vec<(usize, String)>,
}

/// A verifier holding nothing yet: no key, no policy, no signature cache (a validator
/// decides a code once).
pub fn empty_verifier() -> Verifier {
    let settings = Settings {
        sig_cache_capacity: 0,
        ..Settings::default()
    };
    let (trust, _) = TrustList::from_json(br#"{"keys": []}"#).unwrap_or_default();
    Verifier::new(settings, trust, None, None)
}

/// Applies every line of `text` at `now`: only key documents, policies, status lists
/// and their updates are bundle lines (a status event or a heartbeat from a gateway is
/// refused: a validator takes no unsigned word from it).
pub fn apply(v: &Verifier, root: &RootKey, text: &str, now: u64) -> Applied {
    let mut out = Applied::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let refused = |out: &mut Applied, why: String| out.refused.push((i + 1, why));
        let event = match feed_event::parse(line.as_bytes(), Some(root)) {
            Ok(e) => e,
            Err(e) => {
                refused(&mut out, e.to_string());
                continue;
            }
        };
        let policy = match &event {
            Event::Policy(_) => true,
            Event::KeyAdd { .. }
            | Event::KeyRevoke { .. }
            | Event::StatusList(_)
            | Event::StatusListUpdate(_) => false,
            _ => {
                refused(
                    &mut out,
                    "not a bundle line (key, policy, status list)".into(),
                );
                continue;
            }
        };
        match v.apply(event, now) {
            Ok(_) => {
                out.accepted += 1;
                out.policies += usize::from(policy);
            }
            Err(e) => refused(&mut out, e.to_string()),
        }
    }
    out
}

/// Reads DIR: the root key and the bundle's text.
pub fn read(dir: &Path) -> Result<(RootKey, String), Error> {
    let bundle = dir.join(BUNDLE);
    if !bundle.exists() {
        return Err(Error::NoBundle(dir.display().to_string()));
    }
    let root = gateway_issuer::keys::read_root_key(&dir.join(ROOT))
        .map_err(|e| Error::file(&dir.join(ROOT), e))?;
    let text = std::fs::read_to_string(&bundle).map_err(|e| Error::file(&bundle, e))?;
    Ok((root, text))
}

/// Replaces DIR's bundle (and root key copy) atomically, owner-only.
pub fn write(dir: &Path, root_key_file: &Path, bundle: &str) -> Result<(), Error> {
    gateway_issuer::owner_only::dir(dir).map_err(|e| Error::file(dir, e))?;
    let root = std::fs::read(root_key_file).map_err(|e| Error::file(root_key_file, e))?;
    for (name, bytes) in [(ROOT, &root[..]), (BUNDLE, bundle.as_bytes())] {
        let tmp = dir.join(format!(".{name}.new"));
        gateway_issuer::owner_only::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| Error::file(&dir.join(name), e))?;
    }
    Ok(())
}
