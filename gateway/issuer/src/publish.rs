//! The publishers: event lines to a feed file (appended in one write, so a follower never
//! sees half a batch) or to a NATS JetStream stream (created if absent), over one
//! long-lived connection per publisher.
//!
//! On NATS each event goes to its own subject under a prefix (default `jkm`):
//! `jkm.status.<sub>`, `jkm.revoke.<cti>`, `jkm.key.<digest>`, `jkm.policy`,
//! `jkm.heartbeat`. A stream created here keeps one message per subject
//! (`max_messages_per_subject = 1`) and nothing expires: the stream is then a compacted
//! log of the latest status of every subject, which a new gateway replays in full and
//! whose size follows the population, not the history.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use gateway_core::b64;

use crate::nats::{self, NatsAuth};
use crate::{FeedSource, IssueError};

/// Publishes in flight before waiting for the broker's acknowledgements.
const ACK_WINDOW: usize = 4096;
/// Longest wait for the broker when connecting.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Where events go, ready to send.
pub enum Publisher {
    /// Appended to a feed file.
    File(PathBuf),
    /// Published to a stream, over one connection kept for the publisher's life.
    Nats(Box<NatsPublisher>),
}

impl Publisher {
    /// Opens a publisher to `target`: for NATS, connects and makes sure the stream exists
    /// (created with `replicas` if absent).
    pub async fn open(
        target: &FeedSource,
        auth: &NatsAuth,
        prefix: &str,
        replicas: usize,
    ) -> Result<Publisher, IssueError> {
        Ok(match target {
            FeedSource::File(p) => Publisher::File(p.clone()),
            FeedSource::Nats { url, stream } => {
                let config = stream_config(stream, prefix, replicas);
                let p = NatsPublisher::connect(url, &config, auth, prefix).await?;
                Publisher::Nats(Box::new(p))
            }
        })
    }

    /// Sends the lines in order; for NATS, returns the last sequence acknowledged.
    pub async fn send(&self, lines: Vec<String>) -> Result<Option<u64>, IssueError> {
        match self {
            Publisher::File(p) => {
                let path = p.clone();
                tokio::task::spawn_blocking(move || append_lines(&path, &lines))
                    .await
                    .map_err(|_| IssueError::file(p, "the append did not finish"))??;
                Ok(None)
            }
            Publisher::Nats(n) => n.send(lines).await.map(Some),
        }
    }
}

/// A JetStream publisher on one connection.
pub struct NatsPublisher {
    url: String,
    prefix: String,
    js: jetstream::Context,
}

impl NatsPublisher {
    /// Connects (waiting at most 10 s for the broker) and makes sure `stream` exists.
    pub async fn connect(
        url: &str,
        stream: &stream::Config,
        auth: &NatsAuth,
        prefix: &str,
    ) -> Result<NatsPublisher, IssueError> {
        let connecting = nats::connect_as(url, auth, nats::PUBLISHER_NAME);
        let client = tokio::time::timeout(CONNECT_LIMIT, connecting)
            .await
            .map_err(|_| IssueError::broker(url, "no broker answered within 10 s"))?
            .map_err(|e| IssueError::broker(url, e))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream.clone())
            .await
            .map_err(|e| IssueError::broker(url, e))?;
        Ok(NatsPublisher {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            js,
        })
    }

    /// Publishes every line, each on its subject, with a window of acknowledgements in
    /// flight; returns the last sequence acknowledged.
    pub async fn send(&self, lines: Vec<String>) -> Result<u64, IssueError> {
        let err = |e: &dyn std::fmt::Display| IssueError::broker(&self.url, e);
        let mut last = 0;
        let mut pending = Vec::with_capacity(ACK_WINDOW.min(lines.len()));
        for line in lines {
            let subject = subject_of(&self.prefix, &line);
            let ack = self
                .js
                .publish(subject, line.into())
                .await
                .map_err(|e| err(&e))?;
            pending.push(ack);
            if pending.len() == ACK_WINDOW {
                for a in pending.drain(..) {
                    last = a.await.map_err(|e| err(&e))?.sequence;
                }
            }
        }
        for a in pending {
            last = a.await.map_err(|e| err(&e))?.sequence;
        }
        Ok(last)
    }
}

/// The stream a publisher creates when none exists (see the module docs).
pub fn stream_config(name: &str, prefix: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        num_replicas: replicas.max(1),
        subjects: vec![format!("{prefix}.>")],
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The NATS subject of an event line (see the module docs).
pub fn subject_of(prefix: &str, line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    match v.get("type").and_then(|t| t.as_str()) {
        Some("status") => format!("{prefix}.status.{}", field("sub")),
        Some("revoke_token") => format!("{prefix}.revoke.{}", field("cti")),
        Some("key") => {
            let d = ring::digest::digest(&ring::digest::SHA256, field("signed").as_bytes());
            format!("{prefix}.key.{}", b64::encode(&d.as_ref()[..12]))
        }
        Some("policy") => format!("{prefix}.policy"),
        _ => format!("{prefix}.heartbeat"),
    }
}

/// Appends lines to a feed file in one write (a follower never sees half a batch's line).
pub fn append_lines(path: &Path, lines: &[String]) -> Result<(), IssueError> {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| IssueError::file(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| IssueError::file(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use gateway_core::{Color, Sub};

    use super::*;
    use crate::events::PLAIN;

    #[test]
    fn each_event_kind_has_its_subject() {
        let status = PLAIN.status(&Sub([3; 16]), Color::Red, 2, None, 0);
        assert_eq!(
            subject_of("jkm", &status),
            format!("jkm.status.{}", b64::encode(&[3; 16]))
        );
        assert_eq!(
            subject_of("p", &PLAIN.revoke(&[1; 12], 9)),
            format!("p.revoke.{}", b64::encode(&[1; 12]))
        );
        assert_eq!(subject_of("jkm", &PLAIN.heartbeat(0)), "jkm.heartbeat");
        assert_eq!(
            subject_of("jkm", r#"{"type":"policy","signed":"x"}"#),
            "jkm.policy"
        );
        assert!(subject_of("jkm", r#"{"type":"key","signed":"x"}"#).starts_with("jkm.key."));
    }

    #[test]
    fn a_file_publisher_appends_whole_lines() {
        let dir = std::env::temp_dir().join(format!("issuer-publish-{}", std::process::id()));
        crate::owner_only::dir(&dir).unwrap();
        let feed = dir.join("feed.jsonl");
        crate::owner_only::write(&feed, b"").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let p = Publisher::File(feed.clone());
        let lines = vec![PLAIN.heartbeat(1), PLAIN.heartbeat(2)];
        assert_eq!(rt.block_on(p.send(lines.clone())).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(&feed).unwrap(),
            format!("{}\n{}\n", lines[0], lines[1])
        );
        let gone = Publisher::File(dir.join("none"));
        assert!(
            rt.block_on(gone.send(lines)).is_err(),
            "a missing feed file is not created"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
