//! The issuing side (`cli.md`, "Issuing side"): mint codes, compute pseudonyms and append
//! feed events, with the keys of a development setup or given files. Everything signed
//! here goes through `gateway_issuer`, whose codes are decoded by the code the gateway checks with.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use gateway_core::b64;
use gateway_core::feed_auth::FeedKey;
use gateway_core::feed_event;
use gateway_core::pseudonym::CardKind;
use gateway_core::token::{Companion, Kind, NewClaims};
use gateway_core::{Color, Sub};
pub use gateway_issuer::flags::FeedKeyArg;
use gateway_issuer::{events::Writer, keys, owner_only, publish::append_lines};
use gateway_issuer::{DevSetup, Issuer, RootSigner, SigningKey, DEV_ISSUER, DEV_KID};

use crate::config::{ConfigError, DEFAULT_STATE_DIR};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorArg {
    Green,
    Yellow,
    Red,
}

impl From<ColorArg> for Color {
    fn from(c: ColorArg) -> Color {
        match c {
            ColorArg::Green => Color::Green,
            ColorArg::Yellow => Color::Yellow,
            ColorArg::Red => Color::Red,
        }
    }
}

/// Who a code or event is about: a pseudonym, or a document number turned into one.
#[derive(Debug, Clone, Args)]
pub struct SubjectArgs {
    /// The pseudonym, base64url (16 bytes).
    #[arg(long, conflicts_with_all = ["card_kind", "number"])]
    pub sub: Option<String>,
    /// Document kind: id_card, passport, permit or citizen_card (with --number).
    #[arg(long, requires = "number")]
    pub card_kind: Option<String>,
    /// Document number (never stored; only its pseudonym is used). `-` reads it from
    /// standard input and `@FILE` from a file (first line), so it appears neither in the
    /// process list nor in shell history.
    #[arg(long, requires = "card_kind")]
    pub number: Option<String>,
    /// Pseudonym key file (default: the state directory's).
    #[arg(long)]
    pub pseudonym_key: Option<PathBuf>,
}

impl SubjectArgs {
    pub fn resolve(&self, state: &Path) -> Result<Sub, ConfigError> {
        if let Some(s) = &self.sub {
            return b64::decode_array::<16>(s)
                .map(Sub)
                .ok_or_else(|| ConfigError::flag("sub", "not 16 bytes of base64url"));
        }
        match (&self.card_kind, &self.number) {
            (Some(kind), Some(number)) => {
                let kind = CardKind::from_name(kind)
                    .ok_or_else(|| ConfigError::flag("card-kind", "unknown kind"))?;
                let path = self
                    .pseudonym_key
                    .clone()
                    .unwrap_or_else(|| DevSetup::new(state).pseudonym_key());
                let key = keys::read_pseudonym_key(&path)?;
                Ok(key.pseudonym(kind, &read_number(number)?))
            }
            _ => Err(ConfigError::Usage(
                "give --sub, or --card-kind with --number",
            )),
        }
    }
}

/// The number itself: `-` reads the first line of standard input, `@FILE` the first
/// line of FILE, anything else is the number as given.
fn read_number(arg: &str) -> Result<String, ConfigError> {
    let first_line = |text: String| text.lines().next().unwrap_or("").trim().to_owned();
    let number = if arg == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| ConfigError::flag("number", format!("standard input: {e}")))?;
        first_line(line)
    } else if let Some(path) = arg.strip_prefix('@') {
        let path = Path::new(path);
        first_line(std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, e))?)
    } else {
        arg.to_owned()
    };
    if number.is_empty() {
        return Err(ConfigError::flag("number", "empty"));
    }
    Ok(number)
}

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

/// `gateway feed ...`: appends one event to a feed file.
#[derive(Debug, Clone, Args)]
pub struct FeedArgs {
    /// The feed file (default: the state directory's feed.jsonl).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub key: FeedKeyArg,
    #[command(subcommand)]
    pub event: FeedEvent,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FeedEvent {
    /// A status change.
    Status {
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long, value_enum)]
        color: ColorArg,
        #[arg(long)]
        ver: u64,
        #[arg(long)]
        why: Option<u64>,
    },
    /// Revoke a token by id until its expiry.
    RevokeToken {
        /// Token id, base64url.
        #[arg(long)]
        cti: String,
        #[arg(long)]
        exp: u64,
    },
    /// Prove the stream is alive.
    Heartbeat,
}

pub fn feed(a: &FeedArgs) -> Result<String, ConfigError> {
    let key = a.key.load(&a.state_dir)?;
    let line = event_line(&a.event, &a.state_dir, key.as_ref())?;
    let path = a
        .file
        .clone()
        .unwrap_or_else(|| DevSetup::new(&a.state_dir).feed());
    append_lines(&path, &[line])?;
    Ok(format!("appended to {}", path.display()))
}

/// The feed line for an event given on the command line, checked with the gateway's
/// own parser.
pub fn event_line(
    event: &FeedEvent,
    state_dir: &Path,
    key: Option<&FeedKey>,
) -> Result<String, ConfigError> {
    let now = crate::unix_now() as i64;
    let writer = Writer::new(key);
    let line = match event {
        FeedEvent::Status {
            subject,
            color,
            ver,
            why,
        } => writer.status(
            &subject.resolve(state_dir)?,
            (*color).into(),
            *ver,
            *why,
            now,
        ),
        FeedEvent::RevokeToken { cti, exp } => {
            let raw = b64::decode(cti).ok_or_else(|| ConfigError::flag("cti", "not base64url"))?;
            writer.revoke(&raw, *exp)
        }
        FeedEvent::Heartbeat => writer.heartbeat(now),
    };
    // Check our own line with the gateway's parser before it goes out.
    feed_event::parse(line.as_bytes(), None).map_err(gateway_issuer::IssueError::EventRefused)?;
    Ok(line)
}

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
