//! The issuing side: what the authority (and, in development, the quick start, the load
//! tester and the benchmarks) does so that there is something to verify. Keys and their
//! files, minting codes, the color rules of `policy.md`, root-signed documents, the
//! feed's event lines, the file and NATS publishers, and the layout of the development
//! state directory. It depends on the verification core only, so that everything it
//! makes is checked by the very code the gateway runs; nothing here is needed to verify.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod colors;
pub mod dev;
mod error;
pub mod events;
pub mod flags;
pub mod keys;
pub mod mint;
pub mod nats;
pub mod owner_only;
pub mod publish;
pub mod registry;
pub mod status_index;
mod target;

pub use dev::{DevSetup, DEV_ISSUER, DEV_KID};
pub use error::IssueError;
pub use mint::{Issuer, MintError, RootSigner, SigningKey};
pub use target::FeedSource;

/// Default state directory (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = "gateway-state";

/// Seconds since the epoch, from the system clock (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
