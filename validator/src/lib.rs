//! The offline validator (`offline.md`, "The validator"; `cli.md` revision 4). It holds
//! what a gateway holds, in the form the authority signs: the bundle's root-signed key
//! documents and policies and the issuers' status lists with their updates, each checked
//! by the core as the gateway checks them, and decides with the core's offline decision
//! ([`gateway_core::Verifier::decide_offline`]), which runs the online pipeline's steps.
//!
//! Data flows one way: the gateway's bundle and updates (over the wire, [`sync`]) → the
//! core's checks → [`state`] on disk → [`check`] → one JSON line. It talks to the
//! gateway over HTTP only and depends on no server code.

#![forbid(unsafe_code)]

pub mod args;
pub mod check;
pub mod state;
pub mod sync;

/// Why a command failed (exit 2, one line).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// Which.
        path: String,
        /// Why.
        error: String,
    },
    /// DIR holds no bundle yet.
    #[error("{0}: holds no bundle (run validator sync first)")]
    NoBundle(String),
    /// The gateway could not be reached or answered otherwise than expected.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The bundle holds no valid root-signed policy: what DIR holds stays.
    #[error("the bundle holds no valid root-signed policy; kept what {0} holds")]
    NoPolicy(String),
    /// A usage error.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.display().to_string(),
            error: e.to_string(),
        }
    }
}

/// Runs a parsed command line; the exit code.
pub fn run(args: args::Args) -> i32 {
    let result = match args.command {
        args::Command::Check(a) => check::run(&a).map(|line| println!("{line}")),
        args::Command::Sync(a) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(sync::run(&a)),
            Err(e) => Err(Error::Usage(format!("cannot start the runtime: {e}"))),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("validator: {e}");
            2
        }
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
