//! `gateway receipt key` and `gateway receipt check` (`cli.md` revision 4): for the
//! complaint desk, which is given the receipt key R and never the feed key (which could
//! forge events). A receipt is checked for one subject: the sub, or the document's
//! pseudonym from its kind and number (read as the issuing commands read it, never from
//! argv).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gateway_core::b64;
use gateway_core::decide::receipt::{self, Receipt, ReceiptKey};

use crate::config::{ConfigError, DEFAULT_STATE_DIR};
use crate::issue::SubjectArgs;

#[derive(Debug, Clone, Args)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    pub what: ReceiptCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReceiptCommand {
    /// Write the receipt key R (base64url, one line, owner-only) for the complaint desk.
    Key {
        /// The feed key R is derived from (the first one, when there are two).
        #[arg(long)]
        feed_key: PathBuf,
        /// Where R goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a receipt for a subject: exit 0 and what it says when it was given to that
    /// subject under one of the keys, exit 1 when not, 2 on a usage error.
    Check {
        /// The receipt as the person gives it (any case, dashes optional, O for 0, I or L
        /// for 1).
        receipt: String,
        /// A receipt key file from `gateway receipt key` (repeatable: each is tried).
        #[arg(long = "receipt-key")]
        receipt_keys: Vec<PathBuf>,
        /// Or a feed key file, from which R is derived.
        #[arg(long)]
        feed_key: Option<PathBuf>,
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
}

/// Runs the command; returns the exit code (it prints its own answer).
pub fn run(a: &ReceiptArgs) -> i32 {
    match &a.what {
        ReceiptCommand::Key { feed_key, out } => match write_key(feed_key, out) {
            Ok(()) => {
                println!("receipt key written to {}", out.display());
                0
            }
            Err(e) => usage(e),
        },
        ReceiptCommand::Check {
            receipt,
            receipt_keys,
            feed_key,
            subject,
            state_dir,
        } => {
            let keys = match keys(receipt_keys, feed_key.as_ref()) {
                Ok(k) => k,
                Err(e) => return usage(e),
            };
            // The number is read as the issuing commands read it, never from argv.
            if subject
                .number
                .as_deref()
                .is_some_and(|n| n != "-" && !n.starts_with('@'))
            {
                return usage(ConfigError::Usage(
                    "give the number as --number @FILE or --number - (standard input), never on the command line",
                ));
            }
            let sub = match subject.resolve(state_dir) {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            let genuine =
                Receipt::decode(receipt).filter(|b| keys.iter().any(|k| k.check(b, &sub)));
            match genuine {
                Some(b) => {
                    println!("{}", said(&b));
                    0
                }
                None => {
                    println!(r#"{{"genuine":false}}"#);
                    1
                }
            }
        }
    }
}

fn usage(e: ConfigError) -> i32 {
    eprintln!("gateway: {e}");
    2
}

fn write_key(feed_key: &std::path::Path, out: &std::path::Path) -> Result<(), ConfigError> {
    let feed = gateway_issuer::keys::read_feed_key(feed_key)?;
    let r = ReceiptKey::derive(&feed);
    gateway_issuer::owner_only::write(out, format!("{}\n", b64::encode(r.bytes())).as_bytes())
        .map_err(|e| ConfigError::file(out, e))
}

fn keys(files: &[PathBuf], feed_key: Option<&PathBuf>) -> Result<Vec<ReceiptKey>, ConfigError> {
    let mut keys = Vec::new();
    for f in files {
        let text = gateway_issuer::owner_only::read_secret_text(f)?;
        let bytes = b64::decode_array::<32>(text.trim())
            .ok_or_else(|| ConfigError::file(f, "not 32 bytes of base64url"))?;
        keys.push(ReceiptKey::from_bytes(bytes));
    }
    if let Some(f) = feed_key {
        keys.push(ReceiptKey::derive(&gateway_issuer::keys::read_feed_key(f)?));
    }
    if keys.is_empty() {
        return Err(ConfigError::Usage(
            "give --receipt-key FILE or --feed-key FILE",
        ));
    }
    Ok(keys)
}

/// The one JSON line of a genuine receipt: its time, venue and reason.
fn said(b: &[u8; 12]) -> String {
    let time = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    serde_json::json!({
        "genuine": true,
        "time": gateway_core::trust::format_time(i64::from(time)),
        "venue": gateway_core::policy::venue_of(b[4]),
        "reason": receipt::reason_of(b[5]).map(|r| r.label()),
    })
    .to_string()
}
