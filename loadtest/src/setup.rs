//! What the flags resolve to: where the gateway is, the keys to mint with, the codes of
//! the run (minted up front, `mint.rs`, so minting does not compete with the gateway for
//! the CPU while the load runs), the feed for revocations and churn.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::policy::reference_policy_json;
use gateway_core::Policy;
use gateway_issuer::mint::Issuer;
use gateway_issuer::{keys, DevSetup, FeedSource};

use crate::args::Args;
use crate::churn::Feed;
use crate::error::Error;
use crate::mint::{mint_all, Minting};
use crate::mix::{Item, Kind, Mix};
use crate::report::RunInfo;
use crate::run::{Bounds, Model};
use crate::threshold::Threshold;
use gateway_client::{Protocol, Target};

/// Codes minted for a cold run when nothing else says how many.
const COLD_DEFAULT: usize = 200_000;
/// Cold runs: codes set aside for the warm-up (reused during it only).
const WARMUP_CODES: usize = 1000;
/// Subjects reserved for churn.
const CHURN_SUBJECTS: usize = 10_000;

/// Everything resolved, codes minted.
pub struct Setup {
    pub target: Target,
    pub items: Vec<Item>,
    /// Cold runs: items kept for the warm-up (see `run::Plan`).
    pub warmup_items: usize,
    pub churn: Vec<Item>,
    pub feed: Option<Feed>,
    pub model: Model,
    pub bounds: Bounds,
    pub thresholds: Vec<Threshold>,
    pub info: RunInfo,
    pub now: u64,
    /// The receipt key, from the feed key (denies are checked for their receipts when
    /// the gateway says it has a feed key too).
    pub receipts: Option<gateway_core::decide::receipt::ReceiptKey>,
    /// The gateway's admin address (`--admin`).
    pub admin: Option<std::net::SocketAddr>,
}

fn read_line(p: &PathBuf) -> Result<String, Error> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::file(p, e))
}

fn secs(v: f64, flag: &'static str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v).map_err(|_| Error::flag(flag, "not a duration in seconds"))
}

impl Args {
    /// The gateway's policy, for the expected answers.
    fn load_policy(&self, dev: &DevSetup) -> Result<Policy, Error> {
        let path = self.policy.clone().unwrap_or_else(|| dev.policy());
        let root = self.root_key.clone().unwrap_or_else(|| dev.root_pub());
        if !path.exists() && self.policy.is_none() {
            return Policy::from_json(reference_policy_json(1).as_bytes())
                .map_err(|e| Error::Gateway(format!("the reference policy: {e}")));
        }
        let text = read_line(&path)?;
        let root = keys::read_root_key(&root)?;
        Policy::from_signed(&text, &root).map_err(|e| Error::file(&path, e))
    }

    fn parsed_mix(&self) -> Result<Mix, Error> {
        let text = match (&self.mix, &self.mix_file) {
            (Some(m), _) => m.clone(),
            (None, Some(p)) => {
                let t = std::fs::read_to_string(p).map_err(|e| Error::file(p, e))?;
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t) {
                    Ok(obj) => obj
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_u64().unwrap_or(u64::MAX)))
                        .collect::<Vec<_>>()
                        .join(","),
                    Err(_) => t.trim().to_owned(),
                }
            }
            (None, None) => return Ok(Mix::default()),
        };
        text.parse().map_err(|e| Error::flag("mix", e))
    }

    /// Resolves keys and files, mints the codes.
    pub fn setup(&self) -> Result<Setup, Error> {
        if self.protocol == Protocol::H3 && self.plain {
            return Err(Error::flag("plain", "HTTP/3 always runs over TLS"));
        }
        let dev = DevSetup::new(&self.state_dir);
        let api_key = match &self.api_key_file {
            Some(p) => read_line(p)?,
            None => dev.read_api_key()?,
        };
        let ca = if self.plain {
            None
        } else {
            let path = self.ca.clone().unwrap_or_else(|| dev.cert());
            let pem = std::fs::read(&path).map_err(|e| Error::file(&path, e))?;
            let cert = rustls_pemfile::certs(&mut pem.as_slice())
                .next()
                .ok_or_else(|| Error::file(&path, "no certificate"))?
                .map_err(|e| Error::file(&path, e))?;
            Some(cert)
        };
        let issuer = match (&self.issuer_key, &self.kid, &self.iss) {
            (Some(k), Some(kid), Some(iss)) => Issuer {
                kid: kid.clone().into_bytes(),
                issuer: iss.clone(),
                key: keys::read_issuer_key(k)?,
            },
            _ => dev.issuer()?,
        };
        let pk_path = self
            .pseudonym_key
            .clone()
            .unwrap_or_else(|| dev.pseudonym_key());
        // Without a pseudonym key the mix has no card checks.
        let pseudonyms = keys::read_pseudonym_key(&pk_path).ok();
        let feed_text = self.feed.clone().or_else(|| {
            let f = dev.feed();
            f.exists().then(|| format!("file:{}", f.display()))
        });
        let feed = match feed_text {
            Some(f) => Some(Feed {
                source: FeedSource::parse(&f, "feed")?,
                auth: self.nats.auth(),
                prefix: self.nats.subject_prefix.clone(),
                key: self.feed_key.load(&self.state_dir)?.map(Arc::new),
            }),
            None => None,
        };
        let policy = Arc::new(self.load_policy(&dev)?);
        let shadow = match &self.shadow_policy {
            Some(path) => {
                let root = self.root_key.clone().unwrap_or_else(|| dev.root_pub());
                let root = keys::read_root_key(&root)?;
                let text = read_line(path)?;
                Some(Arc::new(
                    Policy::from_signed(&text, &root).map_err(|e| Error::file(path, e))?,
                ))
            }
            None => None,
        };
        let receipts = self
            .feed_key
            .load(&self.state_dir)?
            .map(|k| gateway_core::decide::receipt::ReceiptKey::derive(&k));
        let mut mix = self.parsed_mix()?;
        if feed.is_none() {
            mix.weights.retain(|(k, _)| *k != Kind::Revoked);
            if self.churn_rate.is_some() {
                return Err(Error::flag(
                    "churn-rate",
                    "needs the gateway's feed (--feed)",
                ));
            }
        }
        let duration = secs(self.duration, "duration")?;
        let warmup = secs(self.warmup, "warmup")?;
        let timeout = secs(self.timeout, "timeout")?;
        let model = match self.rate {
            Some(r) if r > 0.0 && r.is_finite() => Model::Open { rate: r },
            Some(_) => return Err(Error::flag("rate", "must be above 0")),
            None => Model::Closed {
                concurrency: self.concurrency(),
            },
        };
        let warmup_items = if self.cold { WARMUP_CODES } else { 0 };
        let count = warmup_items
            + if self.cold {
                self.cold_codes
                    .unwrap_or_else(|| match (self.requests, self.rate) {
                        (Some(n), _) => n as usize + 1000,
                        (None, Some(r)) => {
                            ((r * (self.duration + self.warmup)) * 1.05) as usize + 100
                        }
                        (None, None) => COLD_DEFAULT,
                    })
            } else {
                self.pool.max(1)
            };
        let now = gateway_issuer::unix_now();
        let churn_n = if self.churn_rate.is_some() {
            CHURN_SUBJECTS
        } else {
            0
        };
        let minting = Minting {
            mix: &mix,
            policy,
            shadow,
            venues: &self.venues,
            seed: self.seed,
            now,
        };
        let (items, churn) = mint_all(issuer, pseudonyms, &minting, count, churn_n)?;
        let thresholds = self
            .fail_if
            .iter()
            .map(|t| {
                t.parse::<Threshold>()
                    .map_err(|e| Error::flag("fail-if", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let info = RunInfo {
            target: self.target.to_string(),
            protocol: self.protocol,
            plain: self.plain,
            lean: self.lean,
            model: match model {
                Model::Open { .. } => "open loop".into(),
                Model::Closed { .. } => "closed loop".into(),
            },
            rate: self.rate,
            concurrency: self.rate.is_none().then_some(self.concurrency()),
            connections: self.connections,
            codes: if self.cold { "cold" } else { "warm" }.into(),
            pool: items.len(),
            warmup_s: self.warmup,
            streams: self.streams,
            mix: self
                .mix
                .clone()
                .or_else(|| {
                    self.mix_file
                        .as_ref()
                        .map(|p| format!("file {}", p.display()))
                })
                .unwrap_or_else(|| "default".into()),
            started_at: String::new(),
            ended_at: String::new(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            gateway_version: None,
            receipts_checked: false,
        };
        Ok(Setup {
            target: Target {
                addr: self.target,
                protocol: self.protocol,
                plain: self.plain,
                ca,
                identity: None,
                lean: self.lean,
                server_name: self.server_name.clone(),
                api_key,
                timeout,
            },
            items,
            warmup_items,
            churn,
            feed,
            model,
            bounds: Bounds {
                duration,
                requests: self.requests,
                warmup,
            },
            thresholds,
            info,
            now,
            receipts,
            admin: self.admin,
        })
    }
}
