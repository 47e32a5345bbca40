//! `gateway mint` and `gateway pseudonym`.

use std::path::PathBuf;

use clap::Args;
use gateway_core::b64;
use gateway_core::token::{Companion, Kind, NewClaims};
use gateway_core::{Color, Sub};
use gateway_issuer::keys;
use gateway_issuer::{DevSetup, Issuer, DEV_ISSUER, DEV_KID};

use super::{ColorArg, SubjectArgs};
use crate::config::{ConfigError, DEFAULT_STATE_DIR};

/// `gateway mint`: prints a freshly signed code.
#[derive(Debug, Clone, Args)]
pub struct MintArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[arg(long, value_enum, default_value = "green")]
    pub color: ColorArg,
    /// The subject's status version at issue.
    #[arg(long, default_value_t = 1)]
    pub ver: u64,
    /// Reason code (token.md table).
    #[arg(long)]
    pub why: Option<u64>,
    /// 0 resident ID, 1 passport, 2 permit.
    #[arg(long)]
    pub kind: Option<u8>,
    /// Seconds of validity from now.
    #[arg(long, default_value_t = 3600)]
    pub validity: u64,
    /// A companion, `SUB:COLOR:VER` (SUB base64url); repeat for more (at most 8).
    #[arg(long = "companion")]
    pub companions: Vec<String>,
    /// Issuer private key file, as `gateway keygen` writes it (default: the development
    /// issuer of the state directory).
    #[arg(long)]
    pub issuer_key: Option<PathBuf>,
    #[arg(long)]
    pub kid: Option<String>,
    #[arg(long)]
    pub iss: Option<String>,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

fn companion(s: &str) -> Result<Companion, ConfigError> {
    let bad = || ConfigError::flag("companion", format!("{s:?} is not SUB:COLOR:VER"));
    let mut parts = s.split(':');
    let (Some(sub), Some(color), Some(ver), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(Companion {
        sub: Sub(b64::decode_array::<16>(sub).ok_or_else(bad)?),
        color: Color::from_name(color).ok_or_else(bad)?,
        ver: ver.parse().map_err(|_| bad())?,
    })
}

/// A random token id.
fn new_cti() -> Vec<u8> {
    let mut b = vec![0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b
}

pub fn mint(a: &MintArgs) -> Result<String, ConfigError> {
    let issuer = match &a.issuer_key {
        Some(p) => Issuer {
            kid: a.kid.clone().unwrap_or_else(|| DEV_KID.into()).into_bytes(),
            issuer: a.iss.clone().unwrap_or_else(|| DEV_ISSUER.into()),
            key: keys::read_issuer_key(p)?,
        },
        None => DevSetup::new(&a.state_dir).issuer()?,
    };
    let kind = match a.kind {
        None => None,
        Some(0) => Some(Kind::ResidentId),
        Some(1) => Some(Kind::Passport),
        Some(2) => Some(Kind::Permit),
        Some(_) => return Err(ConfigError::flag("kind", "must be 0, 1 or 2")),
    };
    if a.companions.len() > 8 {
        return Err(ConfigError::flag("companion", "at most 8"));
    }
    let with = if a.companions.is_empty() {
        None
    } else {
        Some(
            a.companions
                .iter()
                .map(|c| companion(c))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let now = crate::unix_now();
    let claims = NewClaims {
        iss: issuer.issuer.clone(),
        sub: a.subject.resolve(&a.state_dir)?,
        iat: now,
        exp: now + a.validity.max(1),
        cti: new_cti(),
        color: a.color.into(),
        ver: a.ver,
        why: a.why,
        kind,
        with,
        status: None,
    };
    issuer
        .mint(&claims)
        .map_err(|e| ConfigError::failed("signing failed", e))
}

/// `gateway pseudonym`: prints a document's pseudonym (base64url).
#[derive(Debug, Clone, Args)]
pub struct PseudonymArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

pub fn pseudonym(a: &PseudonymArgs) -> Result<String, ConfigError> {
    Ok(b64::encode(&a.subject.resolve(&a.state_dir)?.0))
}
