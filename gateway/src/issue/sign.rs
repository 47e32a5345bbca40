//! `gateway sign`: root-signed policies and key documents.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gateway_core::b64;
use gateway_issuer::keys;

use crate::config::ConfigError;

/// `gateway sign`: root-signed documents, for files and the feed.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The root seed file (from root-keygen).
    #[arg(long)]
    pub root_seed: PathBuf,
    #[command(subcommand)]
    pub what: SignWhat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SignWhat {
    /// A policy document (JSON file) → the signed policy file form (one line).
    Policy {
        policy: PathBuf,
        /// Print a `policy` feed event instead of the file form.
        #[arg(long)]
        event: bool,
    },
    /// A trust-list entry (JSON file, as keygen prints it) → a `key` feed event adding it.
    KeyAdd { entry: PathBuf },
    /// A `key` feed event revoking a kid (base64url).
    KeyRevoke { kid: String },
}

pub fn sign(a: &SignArgs) -> Result<String, ConfigError> {
    let root = keys::read_root_signer(&a.root_seed)?;
    match &a.what {
        SignWhat::Policy { policy, event } => {
            let text = std::fs::read_to_string(policy).map_err(|e| ConfigError::file(policy, e))?;
            // Sign only what the gateway would accept.
            gateway_core::Policy::from_json(text.as_bytes())
                .map_err(|e| ConfigError::file(policy, e))?;
            let compact = serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| ConfigError::file(policy, e))?
                .to_string();
            Ok(if *event {
                root.policy_event(&compact)
            } else {
                root.sign_doc(compact.as_bytes())
            })
        }
        SignWhat::KeyAdd { entry } => {
            let text = std::fs::read_to_string(entry).map_err(|e| ConfigError::file(entry, e))?;
            let e: gateway_core::trust::TrustEntry =
                serde_json::from_str(&text).map_err(|e| ConfigError::file(entry, e))?;
            gateway_core::trust::TrustedKey::from_entry(&e)
                .map_err(|err| ConfigError::file(entry, err))?;
            Ok(root.key_add_event(&e))
        }
        SignWhat::KeyRevoke { kid } => {
            b64::decode(kid)
                .filter(|k| !k.is_empty() && k.len() <= 16)
                .ok_or_else(|| ConfigError::flag("kid", "not base64url of 1 to 16 bytes"))?;
            Ok(root.key_revoke_event(kid))
        }
    }
}
