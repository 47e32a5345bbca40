//! Where a feed is: a file or a NATS JetStream stream. The gateway follows one; the
//! publishers write to one.

use std::path::PathBuf;

use crate::IssueError;

/// Where the feed is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    /// A JSON-lines file.
    File(PathBuf),
    /// A JetStream stream on a broker.
    Nats {
        /// `nats://HOST:PORT`.
        url: String,
        /// The stream's name.
        stream: String,
    },
}

impl FeedSource {
    /// The feed's identity, recorded in snapshots: the absolute path, or the broker and
    /// stream.
    pub fn id(&self) -> String {
        match self {
            FeedSource::File(p) => {
                let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                format!("file:{}", abs.display())
            }
            // The stream, not the broker address: any member of a cluster serves it.
            FeedSource::Nats { stream, .. } => format!("nats:{stream}"),
        }
    }

    /// Parses `file:PATH` or `nats://HOST:PORT/STREAM`, given as `--flag`.
    pub fn parse(s: &str, flag: &'static str) -> Result<FeedSource, IssueError> {
        if let Some(p) = s.strip_prefix("file:") {
            if p.is_empty() {
                return Err(IssueError::flag(flag, "file: needs a path"));
            }
            return Ok(FeedSource::File(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("nats://") {
            let (host, stream) = rest
                .split_once('/')
                .filter(|(h, s)| !h.is_empty() && !s.is_empty())
                .ok_or_else(|| IssueError::flag(flag, "expected nats://HOST:PORT/STREAM"))?;
            return Ok(FeedSource::Nats {
                url: format!("nats://{host}"),
                stream: stream.to_owned(),
            });
        }
        Err(IssueError::flag(
            flag,
            format!("{s:?} is neither file:PATH nor nats://HOST:PORT/STREAM"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_files_and_streams_and_names_the_flag() {
        assert_eq!(
            FeedSource::parse("nats://127.0.0.1:4222/JKM", "feed").unwrap(),
            FeedSource::Nats {
                url: "nats://127.0.0.1:4222".into(),
                stream: "JKM".into()
            }
        );
        assert_eq!(
            FeedSource::parse("file:/x/feed.jsonl", "to").unwrap(),
            FeedSource::File("/x/feed.jsonl".into())
        );
        for bad in ["nats://host", "file:", "http://x/y"] {
            let e = FeedSource::parse(bad, "to").unwrap_err().to_string();
            assert!(e.starts_with("--to: "), "{e}");
        }
    }
}
