//! `gateway keygen`, `gateway root-keygen` and `gateway nats-keygen`: new keys, written owner-only.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use gateway_core::b64;
use gateway_issuer::{keys, owner_only};
use gateway_issuer::{Issuer, RootSigner, SigningKey};

use crate::config::ConfigError;

fn write_new(path: &Path, text: &str) -> Result<(), ConfigError> {
    owner_only::write_new(path, format!("{text}\n").as_bytes())
        .map_err(|e| ConfigError::file(path, e))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgArg {
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    Es256,
}

/// `gateway keygen`: a new issuer key pair; writes the private key and prints the
/// trust-list entry (`token.md`).
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    #[arg(long, value_enum, default_value = "EdDSA")]
    pub alg: AlgArg,
    /// Key identifier (1 to 16 bytes of text).
    #[arg(long)]
    pub kid: String,
    /// The issuer it signs for, e.g. CN-33.
    #[arg(long)]
    pub issuer: String,
    /// Days from now the key may issue tokens.
    #[arg(long, default_value_t = 365)]
    pub valid_days: i64,
    /// Where the private key goes (refused if it exists).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn keygen(a: &KeygenArgs) -> Result<String, ConfigError> {
    if a.kid.is_empty() || a.kid.len() > 16 {
        return Err(ConfigError::flag("kid", "must be 1 to 16 bytes"));
    }
    let alg = match a.alg {
        AlgArg::EdDsa => gateway_core::cose::Alg::EdDsa,
        AlgArg::Es256 => gateway_core::cose::Alg::Es256,
    };
    let key = SigningKey::generate(alg).map_err(|e| ConfigError::failed("key generation", e))?;
    write_new(&a.out, &b64::encode(&key.secret_bytes()))?;
    let issuer = Issuer {
        kid: a.kid.clone().into_bytes(),
        issuer: a.issuer.clone(),
        key,
    };
    let now = crate::unix_now() as i64;
    let e = issuer.trust_entry(now, now + a.valid_days.max(1) * 86_400);
    Ok(serde_json::json!({"kid": e.kid, "issuer": e.issuer, "alg": e.alg, "public_key": e.public_key,
                          "not_before": e.not_before, "not_after": e.not_after})
    .to_string())
}

/// `gateway nats-keygen`: a NATS user key (NKey) for a gateway or the authority.
#[derive(Debug, Clone, Args)]
pub struct NatsKeygenArgs {
    /// Where the seed goes (refused if it exists); give it to `--nats-nkey`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes a new user seed and returns its public key, for the broker's `users` list.
pub fn nats_keygen(a: &NatsKeygenArgs) -> Result<String, ConfigError> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair
        .seed()
        .map_err(|e| ConfigError::failed("key generation", e))?;
    write_new(&a.out, &seed)?;
    Ok(pair.public_key())
}

/// Checks that `text` is an NKey user seed (for `--nats-nkey`).
pub fn check_nkey_seed(path: &Path, text: &str) -> Result<(), ConfigError> {
    match nkeys::KeyPair::from_seed(text.trim()) {
        Ok(p) if p.key_pair_type() == nkeys::KeyPairType::User => Ok(()),
        Ok(_) => Err(ConfigError::file(path, "not a NATS user seed (SU…)")),
        Err(e) => Err(ConfigError::file(path, format!("not an NKey seed: {e}"))),
    }
}

/// `gateway root-keygen`: the provincial root key pair.
#[derive(Debug, Clone, Args)]
pub struct RootKeygenArgs {
    /// Private seed file (refused if it exists); the public key goes to FILE.pub.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn root_keygen(a: &RootKeygenArgs) -> Result<String, ConfigError> {
    let seed = keys::random32()?;
    let root = RootSigner::from_seed(&seed);
    write_new(&a.out, &b64::encode(&seed))?;
    let public = PathBuf::from(format!("{}.pub", a.out.display()));
    write_new(&public, &root.public_b64())?;
    Ok(format!(
        "root public key (for --root-key): {}",
        public.display()
    ))
}
