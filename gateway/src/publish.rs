//! `gateway publish`: the issuing authority's side of the feed. Sends events to a NATS
//! JetStream stream (created if absent) or appends them to a feed file; the events come
//! from the command line, from a JSON-lines file of events, or from a JSON-lines file of
//! subjects' facts run through the color rules of `policy.md` (`gateway_core::colors`).
//!
//! Every event is checked with the gateway's own parser before anything is sent, so a
//! bad input line stops the run with nothing published.
//!
//! On NATS each event goes to its own subject under a prefix (default `jkm`):
//! `jkm.status.<sub>`, `jkm.revoke.<cti>`, `jkm.key.<digest>`, `jkm.policy`,
//! `jkm.heartbeat`. A stream created here keeps one message per subject
//! (`max_messages_per_subject = 1`) and nothing expires: the stream is then a compacted
//! log of the latest status of every subject, which a new gateway replays in full and
//! whose size follows the population, not the history.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, stream};
use clap::Args;
use gateway_core::colors::Fact;
use gateway_core::feed_auth::FeedKey;
use gateway_core::pseudonym::{CardKind, PseudonymKey};
use gateway_core::trust::RootKey;
use gateway_core::{b64, feed_event, Sub};
use serde::Deserialize;

use crate::config::{ConfigError, FeedSource, NatsArgs, NatsAuth, DEFAULT_STATE_DIR};
use crate::dev::{read_b64_32, DevSetup};
use crate::issue::FeedEvent;

/// Publishes in flight before waiting for the broker's acknowledgements.
const ACK_WINDOW: usize = 4096;

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Where to: `nats://HOST:PORT/STREAM` or `file:PATH` (default: the state
    /// directory's feed file).
    #[arg(long)]
    pub to: Option<String>,
    /// JSON-lines file of feed events (`feed.md`); `-` reads standard input.
    #[arg(long, conflicts_with = "facts")]
    pub events: Option<PathBuf>,
    /// JSON-lines file of facts, one per line: the subject (`sub`, or `card_kind` and
    /// `number`) and a `fact` (see `gateway_core::colors::Fact`); `-` reads standard input.
    #[arg(long)]
    pub facts: Option<PathBuf>,
    /// Where subjects' facts, colors and versions are kept between runs (default: the
    /// state directory's `registry.json`).
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Root public key: `key` and `policy` events are checked against it before sending.
    #[arg(long)]
    pub root_key: Option<PathBuf>,
    /// NATS: replicas of the stream when this command creates it (3 on a cluster).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub key: crate::issue::FeedKeyArg,
    /// Put the reason code (`why`) in status events made from facts. Off by default: a
    /// gateway never needs it, and it is personal data (confirmed, close contact, …).
    #[arg(long)]
    pub with_why: bool,
    /// One event from the command line (instead of --events or --facts).
    #[command(subcommand)]
    pub event: Option<FeedEvent>,
}

/// One line of a facts file.
#[derive(Debug, Deserialize)]
struct FactLine {
    sub: Option<String>,
    card_kind: Option<String>,
    number: Option<String>,
    #[serde(flatten)]
    fact: Fact,
}

/// An event ready to go: its NATS subject and its line.
pub struct Outgoing {
    pub subject: String,
    pub line: String,
}

impl Outgoing {
    /// An event line under `prefix` (see the module docs for the subjects).
    pub fn new(prefix: &str, line: String) -> Outgoing {
        Outgoing {
            subject: subject_of(prefix, &line),
            line,
        }
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, ConfigError> {
    let lines: Result<Vec<String>, std::io::Error> = if path == Path::new("-") {
        std::io::stdin().lock().lines().collect()
    } else {
        let f = std::fs::File::open(path).map_err(|e| ConfigError::file(path, e))?;
        std::io::BufReader::new(f).lines().collect()
    };
    let lines = lines.map_err(|e| ConfigError::file(path, e))?;
    Ok(lines.into_iter().filter(|l| !l.trim().is_empty()).collect())
}

/// The NATS subject of an event line (already checked).
fn subject_of(prefix: &str, line: &str) -> String {
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

/// Runs the color rules over a facts file; returns the status events of every change.
fn from_facts(
    a: &PublishArgs,
    path: &Path,
    key: Option<&FeedKey>,
) -> Result<Vec<String>, ConfigError> {
    let registry_path = a
        .registry
        .clone()
        .unwrap_or_else(|| a.state_dir.join("registry.json"));
    let mut registry = crate::registry::Registry::load(&registry_path)?;
    let mut pseudonyms: Option<PseudonymKey> = None;
    let now = crate::unix_now() as i64;
    let mut out = Vec::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let at = |what: &str| ConfigError::file(path, format!("line {}: {what}", i + 1));
        let f: FactLine = serde_json::from_str(line).map_err(|e| at(&e.to_string()))?;
        let sub = match (&f.sub, &f.card_kind, &f.number) {
            (Some(s), None, None) => {
                Sub(b64::decode_array::<16>(s).ok_or_else(|| at("sub is not 16 bytes"))?)
            }
            (None, Some(kind), Some(number)) => {
                let kind = CardKind::from_name(kind).ok_or_else(|| at("unknown card_kind"))?;
                if pseudonyms.is_none() {
                    let p = DevSetup::new(&a.state_dir).pseudonym_key();
                    pseudonyms = Some(PseudonymKey::new(&read_b64_32(&p)?));
                }
                match &pseudonyms {
                    Some(k) => k.pseudonym(kind, number),
                    None => return Err(at("no pseudonym key")),
                }
            }
            _ => return Err(at("give sub, or card_kind and number")),
        };
        if let Some((color, ver, why)) = registry.observe(b64::encode(&sub.0), f.fact, a.with_why) {
            out.push(feed_event::status_line_with(
                &sub, color, ver, why, now, key,
            ));
        }
    }
    registry.save(&registry_path, a.with_why)?;
    Ok(out)
}

/// Runs `gateway publish`.
pub fn publish(a: &PublishArgs) -> Result<String, ConfigError> {
    let root = match &a.root_key {
        Some(p) => Some(
            RootKey::from_b64(
                std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::file(p, e))?
                    .trim(),
            )
            .map_err(|e| ConfigError::file(p, e))?,
        ),
        None => None,
    };
    let key = a.key.load(&a.state_dir)?;
    let lines = match (&a.events, &a.facts, &a.event) {
        (Some(p), None, None) => {
            let mut lines = read_lines(p)?;
            for (i, l) in lines.iter_mut().enumerate() {
                let r = feed_event::parse(l.as_bytes(), root.as_ref());
                // Without a root key, signed events cannot be checked here; the gateway will.
                if let Err(e) = r {
                    if !(root.is_none() && matches!(e, feed_event::FeedError::NoRootKey)) {
                        return Err(ConfigError::file(p, format!("line {}: {e}", i + 1)));
                    }
                }
                // With the feed key, events that need a mac get one.
                if let Some(k) = &key {
                    if let Some(signed) = feed_event::add_mac(l, k) {
                        *l = signed;
                    }
                }
            }
            lines
        }
        (None, Some(p), None) => from_facts(a, p, key.as_ref())?,
        (None, None, Some(ev)) => vec![crate::issue::event_line(ev, &a.state_dir, key.as_ref())?],
        _ => {
            return Err(ConfigError(
                "give one of: --events FILE, --facts FILE, or an event subcommand".into(),
            ))
        }
    };
    let target = match &a.to {
        Some(t) => FeedSource::parse(t).map_err(|e| ConfigError(e.0.replace("--feed", "--to")))?,
        None => FeedSource::File(DevSetup::new(&a.state_dir).feed()),
    };
    let n = lines.len();
    match target {
        FeedSource::File(path) => {
            crate::issue::append_lines(&path, &lines)?;
            Ok(format!("{n} events appended to {}", path.display()))
        }
        FeedSource::Nats { url, stream } => {
            let prefix = &a.nats.subject_prefix;
            let out: Vec<Outgoing> = lines
                .into_iter()
                .map(|line| Outgoing::new(prefix, line))
                .collect();
            let auth = a.nats.auth();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ConfigError(format!("runtime: {e}")))?;
            let config = stream_config(&stream, prefix, a.replicas);
            let last = rt.block_on(send(&url, &config, &auth, out))?;
            Ok(format!(
                "{n} events published to {url}/{stream} (last sequence {last})"
            ))
        }
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

/// Connects, makes sure the stream exists, publishes everything with a window of
/// acknowledgements in flight; returns the last sequence acknowledged.
pub async fn send(
    url: &str,
    stream: &stream::Config,
    auth: &NatsAuth,
    events: Vec<Outgoing>,
) -> Result<u64, ConfigError> {
    let nats_err = |e: &dyn std::fmt::Display| ConfigError(format!("{url}: {e}"));
    let client = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::feed::nats::connect(url, auth),
    )
    .await
    .map_err(|_| nats_err(&"no broker answered within 10 s"))?
    .map_err(|e| nats_err(&e))?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream.clone())
        .await
        .map_err(|e| nats_err(&e))?;
    let mut last = 0;
    let mut pending = Vec::with_capacity(ACK_WINDOW);
    for ev in events {
        let ack = js
            .publish(ev.subject, ev.line.into())
            .await
            .map_err(|e| nats_err(&e))?;
        pending.push(ack);
        if pending.len() == ACK_WINDOW {
            for a in pending.drain(..) {
                last = a.await.map_err(|e| nats_err(&e))?.sequence;
            }
        }
    }
    for a in pending {
        last = a.await.map_err(|e| nats_err(&e))?.sequence;
    }
    Ok(last)
}
