//! What can go wrong on the issuing side. Every variant prints as one line naming the
//! file, flag or broker concerned; the `gateway` CLI prints it as its fatal message.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Why an issuing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A file could not be read or written, or does not hold what it should.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A flag's value is unusable.
    #[error("--{flag}: {what}")]
    Flag {
        /// The flag, without its dashes.
        flag: &'static str,
        /// What is wrong with the value.
        what: String,
    },
    /// The operating system's random source failed.
    #[error("system random source failed")]
    Random,
    /// A key could not be made or used.
    #[error("{what}: {err}")]
    Key {
        /// What was being done (`key generation`, `signing failed`, …).
        what: &'static str,
        /// Why it failed.
        err: String,
    },
    /// A line made here was refused by the gateway's own parser.
    #[error("event refused: {0}")]
    EventRefused(gateway_core::feed_event::FeedError),
    /// The NATS broker could not be used.
    #[error("{url}: {what}")]
    Broker {
        /// The broker.
        url: String,
        /// What failed.
        what: String,
    },
    /// The command line asks for something incoherent.
    #[error("{0}")]
    Usage(&'static str),
}

impl IssueError {
    /// A problem with the file at `path`.
    pub fn file(path: &Path, what: impl Display) -> Self {
        IssueError::File {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }

    /// A problem with the value of `--flag`.
    pub fn flag(flag: &'static str, what: impl Display) -> Self {
        IssueError::Flag {
            flag,
            what: what.to_string(),
        }
    }

    /// A key that could not be made or used.
    pub fn key(what: &'static str, err: impl Display) -> Self {
        IssueError::Key {
            what,
            err: err.to_string(),
        }
    }

    /// A broker operation that failed.
    pub fn broker(url: &str, what: impl Display) -> Self {
        IssueError::Broker {
            url: url.to_owned(),
            what: what.to_string(),
        }
    }
}
