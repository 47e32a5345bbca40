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

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use gateway_core::b64;

use crate::events::Writer;
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

    /// Publishes a heartbeat at `at` carrying `prev`, the position of the message just
    /// before it (`feed.md` revision 4): for a file, the lines before it, counted and
    /// appended under the file's lock; for NATS, the stream's last sequence, made exact
    /// with `Nats-Expected-Last-Sequence` (a publish that raced another is retried).
    /// Returns, for NATS, the sequence acknowledged.
    pub async fn heartbeat(&self, writer: &Writer<'_>, at: i64) -> Result<Option<u64>, IssueError> {
        match self {
            Publisher::File(p) => {
                let path = p.clone();
                let key = writer.key().cloned();
                tokio::task::spawn_blocking(move || {
                    append_heartbeat(&path, &Writer::new(key.as_ref()), at)
                })
                .await
                .map_err(|_| IssueError::file(p, "the append did not finish"))??;
                Ok(None)
            }
            Publisher::Nats(n) => n.heartbeat(writer, at).await.map(Some),
        }
    }
}

/// A JetStream publisher on one connection.
pub struct NatsPublisher {
    url: String,
    prefix: String,
    stream: String,
    js: jetstream::Context,
    /// The sequence acknowledged for this publisher's last publish (0: not known yet).
    last: AtomicU64,
}

/// Tries of a heartbeat whose expected last sequence was overtaken by another publisher.
const HEARTBEAT_TRIES: usize = 8;

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
            stream: stream.name.clone(),
            js,
            last: AtomicU64::new(0),
        })
    }

    /// The stream's last sequence, as the broker reports it now.
    async fn stream_last(&self) -> Result<u64, IssueError> {
        let err = |e: &dyn std::fmt::Display| IssueError::broker(&self.url, e);
        let mut s = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| err(&e))?;
        let info = s.info().await.map_err(|e| err(&e))?;
        Ok(info.state.last_sequence)
    }

    /// See [`Publisher::heartbeat`]; returns the sequence acknowledged.
    pub async fn heartbeat(&self, writer: &Writer<'_>, at: i64) -> Result<u64, IssueError> {
        let err = |e: &dyn std::fmt::Display| IssueError::broker(&self.url, e);
        let mut last = self.last.load(Ordering::Acquire);
        for _ in 0..HEARTBEAT_TRIES {
            if last == 0 {
                last = self.stream_last().await?;
            }
            let line = writer.heartbeat(at, Some(last));
            let subject = subject_of(&self.prefix, &line);
            let msg = PublishMessage::build()
                .payload(line.into())
                .expected_last_sequence(last);
            let sent = self.js.send_publish(subject, msg).await;
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    self.last.store(ack.sequence, Ordering::Release);
                    return Ok(ack.sequence);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => last = 0,
                Err(e) => return Err(err(&e)),
            }
        }
        Err(err(&"other publishers kept overtaking the heartbeat"))
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
        if last > 0 {
            self.last.store(last, Ordering::Release);
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

/// Appends lines to a feed file in one write (a follower never sees half a batch's
/// line), under the file's lock, so that a heartbeat's count of the lines before it
/// ([`Publisher::heartbeat`]) is exact.
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
    f.lock().map_err(|e| IssueError::file(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| IssueError::file(path, e))
}

/// Appends a heartbeat at `at` to a feed file, with `prev` the number of complete lines
/// before it, counted under the file's lock (every appender of this crate takes it).
pub fn append_heartbeat(path: &Path, writer: &Writer<'_>, at: i64) -> Result<(), IssueError> {
    let e = |e: std::io::Error| IssueError::file(path, e);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(e)?;
    f.lock().map_err(e)?;
    f.rewind().map_err(e)?;
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(e)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let line = format!("{}\n", writer.heartbeat(at, Some(lines)));
    f.write_all(line.as_bytes()).map_err(e)
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
        assert_eq!(
            subject_of("jkm", &PLAIN.heartbeat(0, None)),
            "jkm.heartbeat"
        );
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
        let lines = vec![PLAIN.heartbeat(1, None), PLAIN.heartbeat(2, None)];
        assert_eq!(rt.block_on(p.send(lines.clone())).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(&feed).unwrap(),
            format!("{}\n{}\n", lines[0], lines[1])
        );
        // A heartbeat counts the lines before it.
        rt.block_on(p.heartbeat(&PLAIN, 3)).unwrap();
        let text = std::fs::read_to_string(&feed).unwrap();
        assert_eq!(
            text.lines().nth(2),
            Some(PLAIN.heartbeat(3, Some(2)).as_str())
        );
        let gone = Publisher::File(dir.join("none"));
        assert!(
            rt.block_on(gone.send(lines)).is_err(),
            "a missing feed file is not created"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
