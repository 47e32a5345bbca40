//! `gateway publish`: the issuing authority's side of the feed. Sends events to a NATS
//! JetStream stream (created if absent) or appends them to a feed file, with
//! `gateway_issuer::publish`; the events come from the command line, from a JSON-lines
//! file of events, or from a JSON-lines file of subjects' facts run through the color
//! rules of `policy.md` (`gateway_issuer::colors`).
//!
//! Every event is checked with the gateway's own parser before anything is sent, so a
//! bad input line stops the run with nothing published.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Args;
use gateway_core::feed_auth::FeedKey;
use gateway_core::pseudonym::{CardKind, PseudonymKey};
use gateway_core::{b64, feed_event, Sub};
use gateway_issuer::colors::Fact;
use gateway_issuer::events::Writer;
use gateway_issuer::flags::{FeedKeyArg, NatsArgs};
use gateway_issuer::publish::Publisher;
use gateway_issuer::registry::Registry;
use gateway_issuer::{keys, DevSetup, FeedSource};
use serde::Deserialize;

use crate::config::{ConfigError, DEFAULT_STATE_DIR};
use crate::issue::FeedEvent;

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
    /// `number`) and a `fact` (see `gateway_issuer::colors::Fact`); `-` reads standard input.
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
    pub key: FeedKeyArg,
    /// Put the reason code (`why`) in status events made from facts. Off by default: a
    /// gateway never needs it, and it is personal data (confirmed, close contact, …).
    #[arg(long)]
    pub with_why: bool,
    /// One event from the command line (instead of --events or --facts), or the status
    /// list.
    #[command(subcommand)]
    pub event: Option<PublishCommand>,
}

/// What `gateway publish` sends from its command line.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PublishCommand {
    #[command(flatten)]
    Event(FeedEvent),
    /// The status list (`offline.md`) built from the state directory's places and the
    /// registry's colors, signed with an issuer key; with --every, its updates
    StatusList(crate::publish_list::StatusListArgs),
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
    let mut registry = Registry::load(&registry_path)?;
    let mut pseudonyms: Option<PseudonymKey> = None;
    let now = crate::unix_now() as i64;
    let writer = Writer::new(key);
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
                    pseudonyms = Some(keys::read_pseudonym_key(&p)?);
                }
                match &pseudonyms {
                    Some(k) => k.pseudonym(kind, number),
                    None => return Err(at("no pseudonym key")),
                }
            }
            _ => return Err(at("give sub, or card_kind and number")),
        };
        if let Some((color, ver, why)) = registry.observe(b64::encode(&sub.0), f.fact, a.with_why) {
            out.push(writer.status(&sub, color, ver, why, now));
        }
    }
    registry.save(&registry_path, a.with_why)?;
    Ok(out)
}

/// Runs `gateway publish`.
pub fn publish(a: &PublishArgs) -> Result<String, ConfigError> {
    let event = match &a.event {
        Some(PublishCommand::StatusList(s)) => {
            let to = crate::publish_list::Destination {
                state_dir: &a.state_dir,
                registry: a.registry.as_deref(),
                to: a.to.as_deref(),
                nats: &a.nats,
                replicas: a.replicas,
            };
            return crate::publish_list::run(&to, s);
        }
        Some(PublishCommand::Event(e)) => Some(e),
        None => None,
    };
    let root = a.root_key.as_deref().map(keys::read_root_key).transpose()?;
    let key = a.key.load(&a.state_dir)?;
    let lines = match (&a.events, &a.facts, event) {
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
                if let Some(signed) = Writer::new(key.as_ref()).sign(l) {
                    *l = signed;
                }
            }
            lines
        }
        (None, Some(p), None) => from_facts(a, p, key.as_ref())?,
        (None, None, Some(ev)) => vec![crate::issue::event_line(ev, &a.state_dir, key.as_ref())?],
        _ => {
            return Err(ConfigError::Usage(
                "give one of: --events FILE, --facts FILE, or an event subcommand",
            ))
        }
    };
    let target = match &a.to {
        Some(t) => FeedSource::parse(t, "to")?,
        None => FeedSource::File(DevSetup::new(&a.state_dir).feed()),
    };
    let n = lines.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::failed("runtime", e))?;
    let prefix = &a.nats.subject_prefix;
    let place = match &target {
        FeedSource::File(p) => p.display().to_string(),
        FeedSource::Nats { url, stream } => format!("{url}/{stream}"),
    };
    // A heartbeat given on the command line carries `prev` (feed.md revision 4), which
    // only the publisher can know.
    let heartbeat = matches!(event, Some(crate::issue::FeedEvent::Heartbeat));
    rt.block_on(async {
        let publisher = Publisher::open(&target, &a.nats.auth(), prefix, a.replicas).await?;
        let sent = if heartbeat {
            let at = gateway_issuer::unix_now() as i64;
            publisher.heartbeat(&Writer::new(key.as_ref()), at).await?
        } else {
            publisher.send(lines).await?
        };
        Ok::<_, ConfigError>(match sent {
            Some(last) => format!("{n} events published to {place} (last sequence {last})"),
            None => format!("{n} events appended to {place}"),
        })
    })
}
