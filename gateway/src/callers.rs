//! Who may ask: callers from `callers.json`, identified by a bearer API key (stored as
//! its SHA-256, compared in constant time) or a TLS client certificate (by the SHA-256
//! of its DER), each with the venue categories it may claim and a request rate.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallersFile {
    callers: Vec<CallerEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    name: String,
    #[serde(default)]
    api_key_sha256: Option<String>,
    /// SHA-256 (hex) of the DER client certificate that identifies this caller (mTLS).
    #[serde(default)]
    client_cert_sha256: Option<String>,
    venues: Vec<String>,
    rate_per_s: u32,
    /// Card checks per second (api.md "Card checks"); absent or 0: none allowed.
    #[serde(default)]
    card_rate_per_s: u32,
    /// May fetch status lists and the offline bundle (`offline.md`).
    #[serde(default)]
    offline: bool,
}

/// One caller.
pub struct Caller {
    pub name: String,
    key_hash: Option<[u8; 32]>,
    cert_hash: Option<[u8; 32]>,
    /// `None` means every venue (`["*"]`).
    venues: Option<Vec<String>>,
    bucket: Mutex<Bucket>,
    rate: f64,
    /// Its card checks; `None` when it may make none.
    cards: Option<Cards>,
    /// May fetch status lists and the offline bundle.
    pub offline: bool,
    /// `gateway_caller_requests_total{caller}`, registered when the file is loaded.
    pub requests: metrics::Counter,
    /// This caller's share of the requests in flight (`--caller-max-in-flight`).
    pub in_flight: Arc<crate::slots::Slots>,
    /// Its share of the long-lived streams (`--caller-max-open-streams`).
    pub streams: Arc<crate::slots::Slots>,
    /// Failed signatures it may still cause (a bucket refilled at
    /// `--caller-bad-signatures-per-s`, holding one second's worth; below zero, the
    /// debt its failing codes wait behind).
    bad_signatures: Mutex<Bucket>,
    bad_signature_rate: f64,
    /// `gateway_caller_refusals_total{caller, reason}`, one per [`Refusal`].
    refusals: [metrics::Counter; Refusal::ALL.len()],
}

/// Why a caller alone was refused (`gateway_caller_refusals_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its share of the requests in flight is taken (503).
    InFlight,
    /// Its share of open streams is taken (503).
    Streams,
    /// A failed signature beyond its budget (its failing codes then wait).
    BadSignatures,
    /// Over its request rate (429).
    Rate,
    /// Over its card-check rate (429).
    CardRate,
    /// A card check by a caller that may make none (403).
    Card,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::InFlight,
        Refusal::Streams,
        Refusal::BadSignatures,
        Refusal::Rate,
        Refusal::CardRate,
        Refusal::Card,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::InFlight => "in_flight",
            Refusal::Streams => "streams",
            Refusal::BadSignatures => "bad_signatures",
            Refusal::Rate => "rate",
            Refusal::CardRate => "card_rate",
            Refusal::Card => "forbidden_card",
        }
    }
}

/// Each caller's shares of the gateway (`limits.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub in_flight: usize,
    pub streams: usize,
    pub bad_signatures_per_s: u32,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            in_flight: 1024,
            streams: 64,
            bad_signatures_per_s: 100,
        }
    }
}

/// A token bucket holding one second's worth of requests.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Over the rate: retry after this many whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after_s: u64,
}

impl Caller {
    /// Whether the caller may claim `venue`.
    pub fn may_use(&self, venue: &str) -> bool {
        match &self.venues {
            None => true,
            Some(v) => v.iter().any(|x| x == venue),
        }
    }

    /// Takes `n` requests from the bucket, or says when there will be enough.
    pub fn take(&self, n: u32) -> Result<(), RateLimited> {
        take_from(&self.bucket, self.rate, f64::from(n))
    }

    /// Its card checks, `None` when it may make none (403 `forbidden_card`).
    pub fn cards(&self) -> Option<&Cards> {
        self.cards.as_ref()
    }

    /// Counts a refusal of this caller.
    pub fn refused(&self, why: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == why) {
            self.refusals[i].increment(1);
        }
    }

    /// Charges one failed signature to the caller's budget (`api.md` revision 4: code by
    /// code, the debt carried); beyond the budget it is counted as a refusal
    /// (`gateway_caller_refusals_total{reason="bad_signatures"}`): the caller's failing
    /// codes then wait until the debt is repaid.
    pub fn charge_bad_signature(&self) {
        let mut b = self.bad_signatures.lock();
        refill(&mut b, self.bad_signature_rate);
        // Debt carried, within a minute's worth (a burst long past is forgiven).
        b.tokens = (b.tokens - 1.0).max(-60.0 * self.bad_signature_rate);
        let over = b.tokens < 0.0;
        drop(b);
        if over {
            self.refused(Refusal::BadSignatures);
        }
    }

    /// `None` while the caller's budget of failed signatures holds one more; else how
    /// long until it does (its failing codes wait that long).
    pub fn bad_signature_debt(&self) -> Option<Duration> {
        let mut b = self.bad_signatures.lock();
        refill(&mut b, self.bad_signature_rate);
        (b.tokens < 1.0).then(|| {
            Duration::from_secs_f64(((1.0 - b.tokens) / self.bad_signature_rate).min(60.0))
        })
    }
}

/// A caller's card checks: a bucket of their own at `card_rate_per_s`, and
/// `gateway_caller_card_checks_total{caller}`.
pub struct Cards {
    bucket: Mutex<Bucket>,
    rate: f64,
    checks: metrics::Counter,
    /// `gateway_caller_card_numbers_distinct{caller}`: a sweep of numbers shows here.
    numbers: crate::distinct::Distinct,
}

impl Cards {
    /// Takes one card check of `number` (429 over the card rate; the caller's codes are
    /// not affected); counted once allowed, and the number in the distinct estimate.
    pub fn take(&self, number: &str) -> Result<(), RateLimited> {
        take_from(&self.bucket, self.rate, 1.0)?;
        self.checks.increment(1);
        self.numbers.note(number);
        Ok(())
    }
}

/// Takes `n` from a bucket refilled at `rate`, or says when there will be enough.
fn take_from(bucket: &Mutex<Bucket>, rate: f64, n: f64) -> Result<(), RateLimited> {
    let mut b = bucket.lock();
    refill(&mut b, rate);
    if b.tokens >= n {
        b.tokens -= n;
        Ok(())
    } else {
        let wait = ((n.min(rate) - b.tokens) / rate).ceil().max(1.0);
        Err(RateLimited {
            retry_after_s: wait as u64,
        })
    }
}

fn refill(b: &mut Bucket, rate: f64) {
    let now = Instant::now();
    let elapsed = now.duration_since(b.last).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(rate);
    b.last = now;
}

/// Every caller.
pub struct Callers {
    list: Vec<Arc<Caller>>,
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

impl Callers {
    pub fn load(path: &Path, shares: Shares) -> Result<Callers, ConfigError> {
        let text = std::fs::read(path).map_err(|e| ConfigError::file(path, e))?;
        Self::from_json(&text, shares).map_err(|e| ConfigError::file(path, e))
    }

    pub fn from_json(bytes: &[u8], shares: Shares) -> Result<Callers, String> {
        let file: CallersFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a callers file: {e}"))?;
        let mut list = Vec::new();
        for c in file.callers {
            let key_hash = match &c.api_key_sha256 {
                Some(h) => Some(hex32(h).ok_or_else(|| {
                    format!("caller {:?}: api_key_sha256 is not 64 hex digits", c.name)
                })?),
                None => None,
            };
            let cert_hash = match &c.client_cert_sha256 {
                Some(h) => Some(hex32(h).ok_or_else(|| {
                    format!(
                        "caller {:?}: client_cert_sha256 is not 64 hex digits",
                        c.name
                    )
                })?),
                None => None,
            };
            if key_hash.is_none() && cert_hash.is_none() {
                return Err(format!(
                    "caller {:?}: needs api_key_sha256 or client_cert_sha256",
                    c.name
                ));
            }
            if c.rate_per_s == 0 {
                return Err(format!("caller {:?}: rate_per_s must be above 0", c.name));
            }
            let venues = if c.venues.iter().any(|v| v == "*") {
                None
            } else {
                Some(c.venues)
            };
            let rate = f64::from(c.rate_per_s);
            let requests =
                metrics::counter!("gateway_caller_requests_total", "caller" => c.name.clone());
            // The flag, or 1% of the caller's own rate where that is more: a large
            // operator's honest traffic carries some forgeries (people do present fakes).
            let bad_rate = f64::from(shares.bad_signatures_per_s.max(c.rate_per_s / 100).max(1));
            let cards = (c.card_rate_per_s > 0).then(|| {
                let rate = f64::from(c.card_rate_per_s);
                Cards {
                    bucket: Mutex::new(Bucket {
                        tokens: rate,
                        last: Instant::now(),
                    }),
                    rate,
                    checks: metrics::counter!("gateway_caller_card_checks_total", "caller" => c.name.clone()),
                    numbers: crate::distinct::Distinct::new(metrics::gauge!("gateway_caller_card_numbers_distinct", "caller" => c.name.clone())),
                }
            });
            let refusals = Refusal::ALL.map(|r| {
                metrics::counter!("gateway_caller_refusals_total", "caller" => c.name.clone(), "reason" => r.label())
            });
            list.push(Arc::new(Caller {
                requests,
                in_flight: crate::slots::Slots::new(shares.in_flight),
                streams: crate::slots::Slots::new(shares.streams),
                bad_signatures: Mutex::new(Bucket {
                    tokens: bad_rate,
                    last: Instant::now(),
                }),
                bad_signature_rate: bad_rate,
                refusals,
                name: c.name,
                key_hash,
                cert_hash,
                venues,
                bucket: Mutex::new(Bucket {
                    tokens: rate,
                    last: Instant::now(),
                }),
                rate,
                cards,
                offline: c.offline,
            }));
        }
        Ok(Callers { list })
    }

    /// The caller holding this API key. Every caller's hash is compared, in constant time,
    /// so the time taken says nothing about which (if any) matched.
    pub fn by_api_key(&self, key: &[u8]) -> Option<&Arc<Caller>> {
        let h = sha256(key);
        let mut found = None;
        for c in &self.list {
            if let Some(k) = &c.key_hash {
                if bool::from(k.ct_eq(&h)) {
                    found = Some(c);
                }
            }
        }
        found
    }

    /// The caller identified by a client certificate (DER).
    pub fn by_cert(&self, cert_hash: &[u8; 32]) -> Option<&Arc<Caller>> {
        self.list
            .iter()
            .find(|c| c.cert_hash.as_ref() == Some(cert_hash))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|c| c.name.as_str())
    }
}

/// The SHA-256 of a DER certificate, as callers.json names it.
pub fn cert_hash(der: &[u8]) -> [u8; 32] {
    sha256(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callers() -> Callers {
        let json = format!(
            r#"{{"callers": [{{"name": "metro", "api_key_sha256": "{}", "venues": ["bus", "metro"], "rate_per_s": 2}},
                            {{"name": "doors", "api_key_sha256": "{}", "venues": ["*"], "rate_per_s": 100}}]}}"#,
            sha256_hex(b"k1"),
            sha256_hex(b"k2")
        );
        Callers::from_json(json.as_bytes(), Shares::default()).unwrap()
    }

    #[test]
    fn keys_scopes_and_rates() {
        let c = callers();
        let metro = c.by_api_key(b"k1").unwrap();
        assert_eq!(metro.name, "metro");
        assert!(c.by_api_key(b"k3").is_none());
        assert!(metro.may_use("bus") && !metro.may_use("school"));
        assert!(c.by_api_key(b"k2").unwrap().may_use("school"));
        assert!(metro.take(2).is_ok());
        assert_eq!(metro.take(1), Err(RateLimited { retry_after_s: 1 }));
    }

    #[test]
    fn refuses_bad_files() {
        let from_json = |b: &[u8]| Callers::from_json(b, Shares::default());
        assert!(from_json(b"{}").is_err());
        assert!(from_json(br#"{"callers": [{"name": "x", "api_key_sha256": "zz", "venues": [], "rate_per_s": 1}]}"#).is_err());
        assert!(
            from_json(br#"{"callers": [{"name": "x", "venues": [], "rate_per_s": 1}]}"#).is_err()
        );
        assert!(from_json(br#"{"callers": [], "extra": 1}"#).is_err());
    }

    #[test]
    fn failed_signatures_are_charged_one_by_one_and_the_debt_carried() {
        let shares = Shares {
            bad_signatures_per_s: 3,
            ..Shares::default()
        };
        let json = format!(
            r#"{{"callers": [{{"name": "f", "api_key_sha256": "{}", "venues": ["*"], "rate_per_s": 9}}]}}"#,
            sha256_hex(b"k")
        );
        let c = Callers::from_json(json.as_bytes(), shares).unwrap();
        let f = c.by_api_key(b"k").unwrap();
        assert_eq!(f.bad_signature_debt(), None);
        f.charge_bad_signature();
        f.charge_bad_signature();
        assert_eq!(f.bad_signature_debt(), None, "one of three left");
        // A thousand failures cost a thousand: the debt is carried (a minute's worth at
        // most), and the wait grows with it.
        for _ in 0..1000 {
            f.charge_bad_signature();
        }
        let d = f.bad_signature_debt().unwrap();
        assert!(d > Duration::from_secs(59), "{d:?}");
    }
}
