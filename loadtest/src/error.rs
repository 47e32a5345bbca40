//! Why a load test could not run: one closed set, each printed as one line naming the
//! flag, file or gateway concerned (`loadtest: …`, exit code 2).

use std::fmt::Display;
use std::path::{Path, PathBuf};

use gateway_issuer::{IssueError, MintError};

/// Why a run could not be set up, done or written out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read or written, or does not hold what it should.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A flag's value cannot be used.
    #[error("--{flag}: {what}")]
    Flag {
        /// The flag, without its dashes.
        flag: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// The flags given do not go together, or ask for what cannot be done.
    #[error("{0}")]
    Usage(&'static str),
    /// Keys, the feed key or the feed (the issuing side).
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A code could not be minted.
    #[error("minting: {0}")]
    Mint(#[from] MintError),
    /// The gateway under test cannot be reached or does not do what the run needs.
    #[error("{0}")]
    Gateway(String),
}

impl Error {
    /// A problem with the file at `path`.
    pub fn file(path: &Path, what: impl Display) -> Self {
        Error::File {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }

    /// A problem with the value of `--flag`.
    pub fn flag(flag: &'static str, what: impl Display) -> Self {
        Error::Flag {
            flag,
            what: what.to_string(),
        }
    }
}
