//! Flags, and what they resolve to: where the gateway is, the keys to mint with, the
//! codes of the run (minted up front so minting does not compete with the gateway for
//! the CPU while the load runs), the feed for revocations and churn.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gateway_core::policy::reference_policy_json;
use gateway_core::pseudonym::PseudonymKey;
use gateway_core::Policy;
use gateway_issuer::flags::{FeedKeyArg, NatsArgs};
use gateway_issuer::mint::{Issuer, SigningKey};
use gateway_issuer::{keys, DevSetup, FeedSource};
use std::sync::Arc;

use crate::churn::Feed;
use crate::client::{Protocol, Target};
use crate::error::Error;
use crate::mix::{Item, Kind, Minter, Mix};
use crate::report::RunInfo;
use crate::run::{Bounds, Model};
use crate::threshold::Threshold;

/// Codes minted for a cold run when nothing else says how many.
const COLD_DEFAULT: usize = 200_000;
/// Cold runs: codes set aside for the warm-up (reused during it only).
const WARMUP_CODES: usize = 1000;
/// Subjects reserved for churn.
const CHURN_SUBJECTS: usize = 10_000;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load-test the gateway: throughput, tail latency, correctness under load, revocation speed"
)]
pub struct Args {
    /// The gateway's address (TLS port, or the plaintext one with --plain).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub target: SocketAddr,
    #[arg(long, value_enum, default_value = "h2")]
    pub protocol: Protocol,
    /// Plaintext HTTP/1.1 or h2c (the gateway's --plain-listen).
    #[arg(long)]
    pub plain: bool,
    /// Name the certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// The gateway's development state directory: API key, CA certificate, issuer key,
    /// pseudonym key and feed file are taken from it unless given below.
    #[arg(long, default_value = gateway_issuer::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// File holding the API key (one line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// PEM certificate (or CA) to trust.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Issuer private key (as `gateway keygen` writes it); with --kid and --iss.
    #[arg(long, requires_all = ["kid", "iss"])]
    pub issuer_key: Option<PathBuf>,
    #[arg(long)]
    pub kid: Option<String>,
    #[arg(long)]
    pub iss: Option<String>,
    /// Pseudonym key (for card checks).
    #[arg(long)]
    pub pseudonym_key: Option<PathBuf>,
    /// Connections to open.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Closed loop: requests in flight (spread over the connections); open loop: most in
    /// flight (at least 512).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Concurrent streams per HTTP/2 or HTTP/3 connection (sets --concurrency to
    /// connections × streams).
    #[arg(long)]
    pub streams: Option<usize>,
    /// Open loop: requests started per second (latency from each one's scheduled time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many measured requests (the duration still bounds the run).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of warm-up, not counted.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The mix, `kind=weight,…` (kinds: green, yellow, red, companions, expired, forged,
    /// unknown_key, malformed, revoked, card).
    #[arg(long)]
    pub mix: Option<String>,
    /// A file holding the mix (the same text, or a JSON object of weights).
    #[arg(long, conflicts_with = "mix")]
    pub mix_file: Option<PathBuf>,
    /// Venue categories to scan at, in turn at random (`bus,school,public`); the expected
    /// answer at each comes from the gateway's policy.
    #[arg(long, default_value = "bus", value_delimiter = ',')]
    pub venues: Vec<String>,
    /// The gateway's signed policy (default: the state directory's), checked with
    /// --root-key (default: the state directory's); the reference policy of `policy.md`
    /// when neither is there.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub root_key: Option<PathBuf>,
    /// Every request a code never sent before (the gateway verifies every signature).
    #[arg(long)]
    pub cold: bool,
    /// Warm: codes in the repeating pool.
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Cold: codes minted up front (default: enough for the rate and duration, or 200,000).
    #[arg(long)]
    pub cold_codes: Option<usize>,
    /// The gateway's feed, for revocations and churn: `file:PATH` or
    /// `nats://HOST:PORT/STREAM` (default: the state directory's feed file, if any).
    #[arg(long)]
    pub feed: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub feed_key: FeedKeyArg,
    /// Status changes per second published while the load runs (needs a feed).
    #[arg(long)]
    pub churn_rate: Option<f64>,
    /// Write the JSON report here (shape: loadtest/report.schema.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Overlay two runs' JSON reports on one HTML page (--html FILE), without a run.
    #[arg(long, num_args = 2, value_names = ["A_JSON", "B_JSON"])]
    pub compare: Vec<PathBuf>,
    /// Fail (exit 1) if this holds, e.g. `p99>2ms`, `wrong>0`, `rps<5000` (repeatable).
    #[arg(long = "fail-if")]
    pub fail_if: Vec<String>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Seconds to wait for one answer before counting a timeout.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Open loop: most requests waiting at once before new ones count as errors.
    #[arg(long, default_value_t = 100_000)]
    pub max_outstanding: usize,
    /// Seed for the mix (runs with the same seed send the same kinds in the same order).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

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
    /// Requests in flight (closed loop), from --streams when given.
    pub fn concurrency(&self) -> usize {
        match self.streams {
            Some(s) => (s * self.connections).max(1),
            None => self.concurrency.max(1),
        }
    }

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
        };
        Ok(Setup {
            target: Target {
                addr: self.target,
                protocol: self.protocol,
                plain: self.plain,
                ca,
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
        })
    }
}

/// What every minting thread shares.
struct Minting<'a> {
    mix: &'a Mix,
    policy: Arc<Policy>,
    venues: &'a [String],
    seed: u64,
    now: u64,
}

/// Mints `count` items of the mix and `churn` green ones, on every core.
fn mint_all(
    issuer: Issuer,
    pseudonyms: Option<PseudonymKey>,
    m: &Minting<'_>,
    count: usize,
    churn: usize,
) -> Result<(Vec<Item>, Vec<Item>), Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per = count.div_ceil(threads);
    let secret = issuer.key.secret_bytes();
    let alg = issuer.key.alg();
    let minter = |seed: u64| -> Result<Minter, Error> {
        let key = match alg {
            gateway_core::cose::Alg::EdDsa => {
                let b: [u8; 32] = secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Usage("the issuer key is not an Ed25519 seed"))?;
                SigningKey::ed25519(&b)
            }
            gateway_core::cose::Alg::Es256 => SigningKey::es256(&secret)?,
        };
        let issuer = Issuer {
            kid: issuer.kid.clone(),
            issuer: issuer.issuer.clone(),
            key,
        };
        Minter::new(
            issuer,
            pseudonyms.clone(),
            m.mix,
            m.policy.clone(),
            m.venues,
            seed,
            m.now,
        )
    };
    let parts: Vec<Result<Vec<Item>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let minter = &minter;
                s.spawn(move || {
                    let mut mt = minter(m.seed.wrapping_add(t as u64))?;
                    let n = per.min(count.saturating_sub(t * per));
                    (0..n).map(|_| mt.next_item()).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Usage("a minting thread failed")))
            })
            .collect()
    });
    let mut items = Vec::with_capacity(count);
    for p in parts {
        items.extend(p?);
    }
    let mut mt = minter(m.seed ^ 0xC4_0000)?;
    let churn = (0..churn)
        .map(|_| mt.make(Kind::Green))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, churn))
}
