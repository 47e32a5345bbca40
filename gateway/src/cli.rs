//! The command line: `gateway serve` and the issuing-side subcommands. A thin layer:
//! each subcommand is a function of the library; errors print as one line and exit 2.

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::issue::{FeedArgs, KeygenArgs, MintArgs, PseudonymArgs, RootKeygenArgs, SignArgs};

#[derive(Debug, Parser)]
#[command(name = "gateway", version, about = "Health-code verification gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (with no key files named: a development setup in --state-dir).
    Serve(Box<ServeArgs>),
    /// Mint a code (issuing side).
    Mint(MintArgs),
    /// Print a document's pseudonym.
    Pseudonym(PseudonymArgs),
    /// Append an event to a feed file.
    Feed(FeedArgs),
    /// Publish events (given, from a file, or from subjects' facts through the color
    /// rules) to a NATS stream or a feed file.
    Publish(Box<crate::publish::PublishArgs>),
    /// Make an issuer key pair; prints its trust-list entry.
    Keygen(KeygenArgs),
    /// Make a NATS user key (NKey seed file); prints the public key for the broker.
    NatsKeygen(crate::issue::NatsKeygenArgs),
    /// Make the provincial root key pair.
    RootKeygen(RootKeygenArgs),
    /// Sign a policy or a key change with the root key.
    Sign(SignArgs),
    /// Destroy the snapshots, feed file and registry under a state directory (with
    /// --keys, the development keys too): the end of the epidemic.
    Purge(crate::purge::PurgeArgs),
    /// Ask the admin port for /healthz (or --url): exit 0 on 200, 2 otherwise. For
    /// container health checks in images without a shell.
    Probe(crate::probe::ProbeArgs),
    /// Receipts for the complaint desk: `key` writes the receipt key from the feed key,
    /// `check` tells whether a receipt was given to a subject.
    Receipt(crate::receipt::ReceiptArgs),
}

/// Initialises logging: human-readable, or JSON lines.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_json);
            let args = match args.merge_file() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("gateway: {e}");
                    return 2;
                }
            };
            // Before the runtime starts a thread: every thread inherits the policy.
            let policy = args.limits.sched_policy.unwrap_or_default();
            match crate::sched::apply(policy) {
                crate::sched::Applied::Batch => tracing::info!("threads scheduled SCHED_BATCH"),
                crate::sched::Applied::Unchanged => {}
                crate::sched::Applied::Failed(why) => {
                    tracing::warn!(%why, "could not set SCHED_BATCH; threads keep the default policy")
                }
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("gateway: cannot start the runtime: {e}");
                    return 1;
                }
            };
            rt.block_on(crate::serve::run(args)).map(|()| String::new())
        }
        Command::Mint(a) => crate::issue::mint(&a),
        Command::Pseudonym(a) => crate::issue::pseudonym(&a),
        Command::Feed(a) => crate::issue::feed(&a),
        Command::Publish(a) => crate::publish::publish(&a),
        Command::Keygen(a) => crate::issue::keygen(&a),
        Command::RootKeygen(a) => crate::issue::root_keygen(&a),
        Command::NatsKeygen(a) => crate::issue::nats_keygen(&a),
        Command::Sign(a) => crate::issue::sign(&a),
        Command::Purge(a) => crate::purge::purge(&a),
        Command::Probe(a) => crate::probe::probe(&a),
        Command::Receipt(a) => return crate::receipt::run(&a),
    };
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            eprintln!("gateway: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
