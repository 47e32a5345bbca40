//! The command line's fatal errors: each one line, naming what is wrong and where.

use std::path::Path;

/// A fatal error of the command line: one line, naming the flag, file or address
/// concerned (`gateway: …` on standard error, exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file cannot be read, written or used.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A flag's value cannot be used.
    #[error("--{flag}: {what}")]
    Flag {
        /// The flag, without its dashes.
        flag: String,
        /// What is wrong with it.
        what: String,
    },
    /// The flags given do not go together.
    #[error("{0}")]
    Usage(&'static str),
    /// The issuing side failed (keys, minting, publishing).
    #[error(transparent)]
    Issue(#[from] gateway_issuer::IssueError),
    /// Something the command needs could not be made.
    #[error("{what}: {err}")]
    Failed {
        /// What was being made (`runtime`, `key generation`, …).
        what: &'static str,
        /// Why not.
        err: String,
    },
    /// A probed address did not answer as it should (`gateway probe`).
    #[error("{url}: {what}")]
    Probe {
        /// The URL probed.
        url: String,
        /// What came back, or why nothing did.
        what: String,
    },
}

impl ConfigError {
    /// A problem with the file at `path`.
    pub fn file(path: &Path, what: impl std::fmt::Display) -> Self {
        ConfigError::File {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }

    /// A problem with the value of `--flag`.
    pub fn flag(flag: &str, what: impl std::fmt::Display) -> Self {
        ConfigError::Flag {
            flag: flag.to_owned(),
            what: what.to_string(),
        }
    }

    /// Something that could not be made.
    pub fn failed(what: &'static str, err: impl std::fmt::Display) -> Self {
        ConfigError::Failed {
            what,
            err: err.to_string(),
        }
    }
}
