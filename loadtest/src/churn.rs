//! Revocation churn: while the load runs, turn subjects red through the feed (a feed file
//! or NATS, with the issuing side's publisher, over one connection for the whole run) at a given rate, and for each change
//! measure the time from the publish call to the first deny the gateway gives that
//! subject's code. A probe per change verifies the code back to back on its own
//! connection until it is denied (or 10 s pass: counted as missed).
//!
//! The churned subjects are reserved for churn (not in the load's pool), so the load's
//! expected answers never change under it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::feed_auth::FeedKey;
use gateway_core::Color;
use gateway_issuer::events::Writer;
use gateway_issuer::nats::NatsAuth;
use gateway_issuer::publish::Publisher;
use gateway_issuer::FeedSource;

use crate::error::Error;
use crate::mix::Item;
use gateway_client::{Conn, Target};

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
    /// Opens the feed for the run: one publisher (for NATS, one connection) that every
    /// change goes through.
    pub async fn open(&self) -> Result<OpenFeed, Error> {
        let publisher = Publisher::open(&self.source, &self.auth, &self.prefix, 1).await?;
        Ok(OpenFeed {
            publisher,
            key: self.key.clone(),
        })
    }
}

/// A feed opened for the run.
pub struct OpenFeed {
    publisher: Publisher,
    key: Option<Arc<FeedKey>>,
}

impl OpenFeed {
    /// Writes event lines as the authority does (with `mac` when the feed has a key).
    pub fn writer(&self) -> Writer<'_> {
        Writer::new(self.key.as_deref())
    }

    /// Publishes event lines, in order.
    pub async fn publish(&self, lines: Vec<String>) -> Result<(), Error> {
        self.publisher.send(lines).await?;
        Ok(())
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
    feed: Arc<OpenFeed>,
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
        let at = gateway_issuer::unix_now() as i64;
        let line = feed.writer().status(&item.sub, Color::Red, 2, None, at);
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
        let answer = conn.post(t, path, body.clone(), "text/plain").await;
        if let Some(a) = answer.ok().filter(|a| a.status == 200) {
            if a.json().unwrap_or_default()["decision"] == "deny" {
                return Some(published.elapsed().as_secs_f64() * 1000.0);
            }
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    None
}
