//! Revocation churn: while the load runs, turn subjects red through the feed (a feed file
//! or NATS, with the gateway's own publisher) at a given rate, and for each change
//! measure the time from the publish call to the first deny the gateway gives that
//! subject's code. A probe per change verifies the code back to back on its own
//! connection until it is denied (or 10 s pass: counted as missed).
//!
//! The churned subjects are reserved for churn (not in the load's pool), so the load's
//! expected answers never change under it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::config::{FeedSource, NatsAuth};
use gateway::publish::{send, stream_config, Outgoing};
use gateway_core::feed_auth::FeedKey;
use gateway_core::feed_event::{self, status_line};
use gateway_core::Color;

use crate::client::{Conn, Target};
use crate::mix::Item;

/// Longest wait for one change to show.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Where changes are published.
#[derive(Clone)]
pub struct Feed {
    pub source: FeedSource,
    pub auth: NatsAuth,
    /// NATS subject prefix (as `gateway publish`).
    pub prefix: String,
    /// The feed key: events get their `mac` (feed.md revision 3), as the authority's do.
    pub key: Option<Arc<FeedKey>>,
}

impl Feed {
    /// Publishes event lines, in order (with `mac` when the feed has a key).
    pub async fn publish(&self, mut lines: Vec<String>) -> Result<(), String> {
        if let Some(k) = &self.key {
            for l in &mut lines {
                *l = feed_event::add_mac(l, k).ok_or("an event line the gateway would refuse")?;
            }
        }
        match &self.source {
            FeedSource::File(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || gateway::issue::append_lines(&p, &lines))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            FeedSource::Nats { url, stream } => {
                let events = lines
                    .into_iter()
                    .map(|l| Outgoing::new(&self.prefix, l))
                    .collect();
                let cfg = stream_config(stream, &self.prefix, 1);
                send(url, &cfg, &self.auth, events)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Propagation latencies measured (ms), and changes that never showed.
#[derive(Debug, Default, Clone)]
pub struct Propagation {
    pub latencies_ms: Vec<f64>,
    pub missed: u64,
    pub publish_errors: u64,
}

/// Runs churn at `rate` changes per second for `duration` over `subjects` (green codes,
/// version 1), each turned red at version 2.
pub async fn run(
    feed: Feed,
    target: Target,
    subjects: Vec<Item>,
    rate: f64,
    duration: Duration,
) -> Propagation {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let mut probes = Vec::new();
    let mut out = Propagation::default();
    for (n, item) in subjects.into_iter().enumerate() {
        let at = start + interval * n as u32;
        if at.saturating_duration_since(start) >= duration {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let line = status_line(&item.sub, Color::Red, 2, None, gateway::unix_now() as i64);
        let published = Instant::now();
        if feed.publish(vec![line]).await.is_err() {
            out.publish_errors += 1;
            continue;
        }
        let t = target.clone();
        probes.push(tokio::spawn(async move {
            probe(&t, &item.path, item.body, published).await
        }));
    }
    for p in probes {
        match p.await {
            Ok(Some(ms)) => out.latencies_ms.push(ms),
            _ => out.missed += 1,
        }
    }
    out
}

/// Verifies the code until it is denied; the time since `published`, in ms.
async fn probe(t: &Target, path: &str, body: Bytes, published: Instant) -> Option<f64> {
    let conn = Conn::connect(t).await.ok()?;
    while published.elapsed() < GIVE_UP {
        if let Ok((200, answer)) = conn.post(t, path, body.clone(), false).await {
            let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            if v["decision"] == "deny" {
                return Some(published.elapsed().as_secs_f64() * 1000.0);
            }
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    None
}
