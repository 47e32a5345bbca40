//! `gateway feed`: one event appended to a feed file (and the event lines `gateway publish` sends from the command line).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use gateway_core::b64;
use gateway_core::feed_auth::FeedKey;
use gateway_core::feed_event;
use gateway_issuer::events::Writer;
use gateway_issuer::publish::{append_heartbeat, append_lines};
use gateway_issuer::DevSetup;

use super::{ColorArg, FeedKeyArg, SubjectArgs};
use crate::config::{ConfigError, DEFAULT_STATE_DIR};

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
    if matches!(a.event, FeedEvent::Heartbeat) {
        // With `prev`, the lines before it, counted under the file's lock.
        append_heartbeat(&path, &Writer::new(key.as_ref()), crate::unix_now() as i64)?;
    } else {
        append_lines(&path, &[line])?;
    }
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
        FeedEvent::Heartbeat => writer.heartbeat(now, None),
    };
    // Check our own line with the gateway's parser before it goes out.
    feed_event::parse(line.as_bytes(), None).map_err(gateway_issuer::IssueError::EventRefused)?;
    Ok(line)
}
