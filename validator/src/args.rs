//! The command line (`cli.md` revision 4, `validator`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gateway_client::Protocol;

/// An offline gate: keeps the signed bundle and status lists a gateway relays, and
/// decides codes from them with no network.
#[derive(Debug, Parser)]
#[command(name = "validator", version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch `/v1/offline/bundle`, check every line against the root key, keep what passes
    /// in DIR (owner-only, replaced atomically); with --follow, keep fetching updates.
    Sync(SyncArgs),
    /// Decide CODE (or `-`: standard input) at VENUE from DIR, with no network: one JSON
    /// line, exit 0 whatever the decision.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The gateway: `https://HOST:PORT` (the path, if any, is ignored).
    #[arg(long)]
    pub from: String,
    /// A file holding the API key of a caller with `"offline": true`.
    #[arg(long)]
    pub api_key_file: PathBuf,
    /// The provincial root public key the validator was installed with.
    #[arg(long)]
    pub root_key: PathBuf,
    /// Where the validator keeps what it accepted.
    #[arg(long)]
    pub dir: PathBuf,
    /// PEM certificate authority for the gateway's certificate (else the system's roots
    /// are not consulted: give it).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The name the gateway's certificate is checked against (default: the URL's host).
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long, value_enum, default_value = "h2")]
    pub protocol: Protocol,
    /// Then fetch each list's updates every SECONDS (and the bundle when a list is
    /// replaced, and at least every 10 × SECONDS), until stopped.
    #[arg(long)]
    pub follow: Option<u64>,
    /// With --follow: stop after this many rounds (tests; default: never).
    #[arg(long, hide = true)]
    pub rounds: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Where `validator sync` keeps the bundle.
    #[arg(long)]
    pub dir: PathBuf,
    /// The venue category of the gate.
    #[arg(long)]
    pub venue: String,
    /// The time to decide at (seconds since the epoch; default: the clock).
    #[arg(long)]
    pub now: Option<u64>,
    /// The scanned code, or `-` to read it from standard input.
    pub code: String,
}
