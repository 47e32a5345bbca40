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
    #[command(flatten)]
    pub issuer: IssuerArgs,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Configure the state directory's status list (`offline.md`) at this URI (once;
    /// `…/status-lists/NAME`, NAME beginning with the issuer's iss and '-'): codes then
    /// carry the subject's place in it. Without it, the configured list is used if any.
    #[arg(long)]
    pub status_list_uri: Option<String>,
    /// Indices in a list configured by --status-list-uri.
    #[arg(long, default_value_t = 1 << 20)]
    pub status_list_size: u32,
}

/// Which issuer signs (`gateway mint`, `gateway publish status-list`).
#[derive(Debug, Clone, Default, Args)]
pub struct IssuerArgs {
    /// Issuer private key file, as `gateway keygen` writes it (default: the development
    /// issuer of the state directory).
    #[arg(long)]
    pub issuer_key: Option<PathBuf>,
    #[arg(long)]
    pub kid: Option<String>,
    #[arg(long)]
    pub iss: Option<String>,
}

impl IssuerArgs {
    /// The issuer of `--issuer-key`, `--kid`, `--iss`, else the state directory's
    /// development issuer.
    pub fn issuer(&self, state_dir: &std::path::Path) -> Result<Issuer, ConfigError> {
        Ok(match &self.issuer_key {
            Some(p) => Issuer {
                kid: self.kid.as_deref().unwrap_or(DEV_KID).as_bytes().to_vec(),
                issuer: self.iss.as_deref().unwrap_or(DEV_ISSUER).to_owned(),
                key: keys::read_issuer_key(p)?,
            },
            None => DevSetup::new(state_dir).issuer()?,
        })
    }
}

/// The subject's place in the state directory's status list: configured by
/// `uri` the first time, else as configured; `None` when no list is configured.
fn status_place(a: &MintArgs, sub: &Sub) -> Result<Option<(u32, String)>, ConfigError> {
    use gateway_issuer::status_index::{StatusIndex, FILE};
    let path = a.state_dir.join(FILE);
    let mut index = match (StatusIndex::load(&path)?, &a.status_list_uri) {
        (Some(x), Some(uri)) if &x.uri != uri => {
            return Err(ConfigError::flag(
                "status-list-uri",
                format!("the state directory's list is {}", x.uri),
            ))
        }
        (Some(x), _) => x,
        (None, Some(uri)) => StatusIndex::new(uri, a.status_list_size)?,
        (None, None) => return Ok(None),
    };
    let idx = index.place(sub)?;
    index.save(&path)?;
    Ok(Some((idx, index.uri.clone())))
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
    let issuer = a.issuer.issuer(&a.state_dir)?;
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
    let sub = a.subject.resolve(&a.state_dir)?;
    let status = status_place(a, &sub)?;
    let claims = NewClaims {
        iss: issuer.issuer.clone(),
        sub,
        iat: now,
        exp: now + a.validity.max(1),
        cti: new_cti(),
        color: a.color.into(),
        ver: a.ver,
        why: a.why,
        kind,
        with,
        status,
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
