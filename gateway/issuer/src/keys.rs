//! Key files, one reader per kind of key, and fresh random keys. Every key file is one
//! line of base64url (see `cli.md`); secret ones are refused when group or others may
//! read them (`owner_only`), except the root and issuer seeds of the development state,
//! which are read as they are (the gateway never reads them).

use std::path::Path;

use gateway_core::b64;
use gateway_core::feed_auth::FeedKey;
use gateway_core::pseudonym::PseudonymKey;
use gateway_core::trust::RootKey;
use ring::rand::{SecureRandom, SystemRandom};

use crate::mint::{RootSigner, SigningKey};
use crate::{owner_only, IssueError};

const NOT_32: &str = "not 32 bytes of base64url on one line";

/// 32 bytes from the system's random source.
pub fn random32() -> Result<[u8; 32], IssueError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map(|()| b)
        .map_err(|_| IssueError::Random)
}

/// A file's text, trimmed.
fn read_line(path: &Path) -> Result<String, IssueError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| IssueError::file(path, e))
}

fn seed(path: &Path, text: &str) -> Result<[u8; 32], IssueError> {
    b64::decode_array::<32>(text.trim()).ok_or_else(|| IssueError::file(path, NOT_32))
}

/// The provincial root's private seed (`root-keygen`'s output).
pub fn read_root_signer(path: &Path) -> Result<RootSigner, IssueError> {
    Ok(RootSigner::from_seed(&seed(path, &read_line(path)?)?))
}

/// The provincial root's public key (`--root-key`), which signs trust entries and policies.
pub fn read_root_key(path: &Path) -> Result<RootKey, IssueError> {
    RootKey::from_b64(&read_line(path)?)
        .map_err(|e| IssueError::file(path, format!("not a root key: {e}")))
}

/// An issuer's private key: a 32-byte Ed25519 seed or a P-256 PKCS#8 document.
pub fn read_issuer_key(path: &Path) -> Result<SigningKey, IssueError> {
    let raw = b64::decode(&read_line(path)?)
        .ok_or_else(|| IssueError::file(path, "not base64url on one line"))?;
    match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(seed) => Ok(SigningKey::ed25519(&seed)),
        Err(_) => SigningKey::es256(&raw).map_err(|e| IssueError::file(path, e)),
    }
}

/// The pseudonym key (owner-only), which turns document numbers into pseudonyms.
pub fn read_pseudonym_key(path: &Path) -> Result<PseudonymKey, IssueError> {
    PseudonymKey::from_b64(&owner_only::read_secret_text(path)?)
        .ok_or_else(|| IssueError::file(path, NOT_32))
}

/// A feed key (owner-only), which authenticates feed events (feed.md revision 3).
pub fn read_feed_key(path: &Path) -> Result<FeedKey, IssueError> {
    FeedKey::from_b64(&owner_only::read_secret_text(path)?)
        .ok_or_else(|| IssueError::file(path, NOT_32))
}

/// A caller's API key (the bearer token), as one line.
pub fn read_api_key(path: &Path) -> Result<String, IssueError> {
    read_line(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_reader_names_the_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("issuer-keys-{}", std::process::id()));
        owner_only::dir(&dir).unwrap();
        let good = dir.join("good");
        owner_only::write(&good, format!("{}\n", b64::encode(&[5; 32])).as_bytes()).unwrap();
        let bad = dir.join("bad");
        owner_only::write(&bad, b"not a key\n").unwrap();
        let public = dir.join("root.pub");
        let root = read_root_signer(&good).unwrap();
        owner_only::write(&public, root.public_b64().as_bytes()).unwrap();
        assert!(read_root_key(&public).is_ok());
        assert!(read_issuer_key(&good).is_ok());
        assert!(read_pseudonym_key(&good).is_ok());
        assert!(read_feed_key(&good).is_ok());
        let errors = [
            read_root_signer(&bad).err(),
            read_root_key(&bad).err(),
            read_issuer_key(&bad).err(),
            read_pseudonym_key(&bad).err(),
            read_feed_key(&bad).err(),
        ];
        for e in errors {
            let e = e.unwrap().to_string();
            assert!(e.starts_with(&bad.display().to_string()), "{e}");
            assert!(
                !e.contains("not a key"),
                "the file's text is not echoed: {e}"
            );
        }
        let missing = read_api_key(&dir.join("none")).unwrap_err().to_string();
        assert!(missing.contains("none"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
