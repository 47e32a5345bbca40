//! The issuing side (`cli.md`, "Issuing side"): mint codes, compute pseudonyms and append
//! feed events, with the keys of a development setup or given files. Everything signed
//! here goes through `gateway_issuer`, whose codes are decoded by the code the gateway checks with.

//!
//! One file per command: `mint.rs` (`mint`, `pseudonym`), `feed.rs` (`feed`), `keygen.rs`
//! (`keygen`, `root-keygen`, `nats-keygen`), `sign.rs` (`sign`); the subject flags they
//! share are here.

mod feed;
mod keygen;
mod mint;
mod sign;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use gateway_core::b64;
use gateway_core::pseudonym::CardKind;
use gateway_core::{Color, Sub};
pub use gateway_issuer::flags::FeedKeyArg;
use gateway_issuer::{keys, DevSetup};

pub use feed::{event_line, feed, FeedArgs, FeedEvent};
pub use keygen::{
    check_nkey_seed, keygen, nats_keygen, root_keygen, AlgArg, KeygenArgs, NatsKeygenArgs,
    RootKeygenArgs,
};
pub use mint::{mint, pseudonym, IssuerArgs, MintArgs, PseudonymArgs};
pub use sign::{sign, SignArgs, SignWhat};

use crate::config::ConfigError;

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
