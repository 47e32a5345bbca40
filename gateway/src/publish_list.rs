//! `gateway publish status-list` (`cli.md` revision 4, `offline.md`): the authority's
//! status list built from its places (`status-list.json`: each subject's index) and its
//! registry's colors, signed with an issuer key and published; with `--every SECONDS`,
//! an update of what changed at each interval and a fresh full list every
//! `--full-every`, until stopped.

use std::time::{Duration, Instant};

use clap::Args;
use gateway_core::offline::bits::{value_of, TwoBits};
use gateway_core::offline::list::{NewList, NewUpdate};
use gateway_issuer::events::Writer;
use gateway_issuer::publish::Publisher;
use gateway_issuer::registry::Registry;
use gateway_issuer::status_index::{StatusIndex, FILE};
use gateway_issuer::{DevSetup, FeedSource, Issuer};

use crate::config::ConfigError;

/// Where the list goes and what it is built from (`gateway publish`'s own flags).
pub struct Destination<'a> {
    /// The state directory (`status-list.json`, the issuer, the feed file).
    pub state_dir: &'a std::path::Path,
    /// The registry (default: the state directory's `registry.json`).
    pub registry: Option<&'a std::path::Path>,
    /// `--to` (default: the state directory's feed file).
    pub to: Option<&'a str>,
    /// The broker's flags.
    pub nats: &'a gateway_issuer::flags::NatsArgs,
    /// Replicas of a stream this creates.
    pub replicas: usize,
}

/// The status list's flags.
#[derive(Debug, Clone, Args)]
pub struct StatusListArgs {
    /// The issuer (its `iss` must begin the list's NAME).
    #[command(flatten)]
    pub issuer: crate::issue::IssuerArgs,
    /// Publish an update of what changed every SECONDS, until stopped.
    #[arg(long)]
    pub every: Option<u64>,
    /// With --every: a fresh full list every SECONDS.
    #[arg(long, default_value_t = 3600)]
    pub full_every: u64,
    /// Seconds a consumer may cache a list (its `ttl`).
    #[arg(long, default_value_t = 300)]
    pub ttl: u64,
    /// Seconds a list stays usable (its `exp` after its `iat`).
    #[arg(long, default_value_t = 86_400)]
    pub valid_for: u64,
    /// With --every: stop after this many intervals (tests).
    #[arg(long, hide = true)]
    pub rounds: Option<u64>,
}

/// The list's values now: every placed subject's color in the registry.
fn values(index: &StatusIndex, registry: &Registry) -> TwoBits {
    let mut bits = TwoBits::zeros(index.size as usize);
    for (sub, idx) in index.places() {
        bits.set(idx as usize, value_of(registry.color_of(sub)));
    }
    bits
}

/// Runs it; what was published.
pub fn run(a: &Destination<'_>, s: &StatusListArgs) -> Result<String, ConfigError> {
    let index_path = a.state_dir.join(FILE);
    let index = StatusIndex::load(&index_path)?.ok_or(ConfigError::Usage(
        "no status list configured: `gateway mint --status-list-uri URI` once",
    ))?;
    let issuer = s.issuer.issuer(a.state_dir)?;
    let registry_path = a
        .registry
        .map_or_else(|| a.state_dir.join("registry.json"), ToOwned::to_owned);
    let target = match a.to {
        Some(t) => FeedSource::parse(t, "to")?,
        None => FeedSource::File(DevSetup::new(a.state_dir).feed()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::failed("runtime", e))?;
    rt.block_on(async {
        let publisher =
            Publisher::open(&target, &a.nats.auth(), &a.nats.subject_prefix, a.replicas).await?;
        let w = Writer::new(None);
        let mut bits = values(&index, &Registry::load(&registry_path)?);
        let mut base = gateway_issuer::unix_now();
        publisher
            .send(vec![w.status_list(&full(&issuer, &index, &bits, base, s)?)])
            .await?;
        let (mut lists, mut updates) = (1u64, 0u64);
        let Some(every) = s.every else {
            return Ok(format!(
                "status list {} published ({} indices)",
                index.uri, index.size
            ));
        };
        let every = Duration::from_secs(every.max(1));
        let mut full_at = Instant::now();
        let mut n = 0u64;
        for round in 1.. {
            tokio::time::sleep(every).await;
            let now = gateway_issuer::unix_now();
            // Subjects placed since (a mint) and colors changed since (a publish --facts).
            let index = StatusIndex::load(&index_path)?.unwrap_or_else(|| index.clone());
            let fresh = values(&index, &Registry::load(&registry_path)?);
            if full_at.elapsed() >= Duration::from_secs(s.full_every.max(1))
                || fresh.len() != bits.len()
            {
                publisher
                    .send(vec![w.status_list(&full(&issuer, &index, &fresh, now, s)?)])
                    .await?;
                (base, n, full_at) = (now, 0, Instant::now());
                lists += 1;
            } else {
                let changes: Vec<(u32, u8)> = (0..fresh.len())
                    .filter(|i| fresh.get(*i) != bits.get(*i))
                    .map(|i| (i as u32, fresh.get(i).unwrap_or(0)))
                    .collect();
                n += 1;
                let signed = issuer
                    .sign_status_list_update(&NewUpdate {
                        iss: &issuer.issuer,
                        uri: &index.uri,
                        iat: now,
                        base,
                        n,
                        changes: &changes,
                        revoked: &[],
                    })
                    .map_err(|e| ConfigError::failed("signing failed", e))?;
                publisher.send(vec![w.status_list_update(&signed)]).await?;
                updates += 1;
            }
            bits = fresh;
            if s.rounds.is_some_and(|r| round >= r) {
                break;
            }
        }
        Ok(format!(
            "status list {}: {lists} lists and {updates} updates published",
            index.uri
        ))
    })
}

fn full(
    issuer: &Issuer,
    index: &StatusIndex,
    bits: &TwoBits,
    iat: u64,
    s: &StatusListArgs,
) -> Result<Vec<u8>, ConfigError> {
    let name = gateway_core::token::list_name(&index.uri).unwrap_or_default();
    if !name
        .strip_prefix(issuer.issuer.as_str())
        .is_some_and(|r| r.starts_with('-'))
    {
        return Err(ConfigError::Usage(
            "the list's NAME must begin with the issuer's iss and '-'",
        ));
    }
    issuer
        .sign_status_list(&NewList {
            iss: &issuer.issuer,
            uri: &index.uri,
            iat,
            exp: Some(iat + s.valid_for),
            ttl: Some(s.ttl.max(1)),
            bits,
            revoked: &[],
        })
        .map_err(|e| ConfigError::failed("signing failed", e))
}
