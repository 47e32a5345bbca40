//! Flag sets shared by the commands that publish to a feed (`gateway publish`, `gateway
//! feed`, `loadtest`), so that they read the same way everywhere.

use std::path::{Path, PathBuf};

use clap::Args;
use gateway_core::feed_auth::FeedKey;

use crate::nats::NatsAuth;
use crate::{keys, DevSetup, IssueError};

/// The broker flags of the commands that publish to NATS; `gateway serve` has the same
/// four in its TOML-capable flag set.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsArgs {
    /// NATS: a file holding the broker's auth token (one line).
    #[arg(long)]
    pub nats_token_file: Option<PathBuf>,
    /// NATS: a `.creds` file (user JWT and NKey seed).
    #[arg(long)]
    pub nats_creds: Option<PathBuf>,
    /// NATS: a file holding the user's NKey seed (`gateway nats-keygen` makes one).
    #[arg(long)]
    pub nats_nkey: Option<PathBuf>,
    /// NATS: PEM CA bundle for the broker's certificate; TLS to the broker is then required.
    #[arg(long)]
    pub nats_ca: Option<PathBuf>,
    /// NATS subject prefix of the events (`PREFIX.status.<sub>`, …).
    #[arg(long, default_value = "jkm")]
    pub subject_prefix: String,
}

impl NatsArgs {
    /// The credentials named.
    pub fn auth(&self) -> NatsAuth {
        NatsAuth {
            token_file: self.nats_token_file.clone(),
            creds: self.nats_creds.clone(),
            nkey: self.nats_nkey.clone(),
            ca: self.nats_ca.clone(),
        }
    }
}

/// The feed key the issuing side writes `mac` with (feed.md revision 3).
#[derive(Debug, Clone, Default, Args)]
pub struct FeedKeyArg {
    /// The feed key file (default: the state directory's feed.key, if there is one; with
    /// no key, events are written without `mac`).
    #[arg(long)]
    pub feed_key: Option<PathBuf>,
}

impl FeedKeyArg {
    /// The key given, else the state directory's, else none.
    pub fn load(&self, state_dir: &Path) -> Result<Option<FeedKey>, IssueError> {
        match &self.feed_key {
            Some(p) => keys::read_feed_key(p).map(Some),
            None => DevSetup::new(state_dir).read_feed_key(),
        }
    }
}
