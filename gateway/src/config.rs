//! `gateway serve` configuration: flags (`cli.md`), optionally a TOML file with the same
//! keys (`--config`), the flag winning. Parsed once, here, into [`ServeConfig`]; every
//! fatal problem becomes one line naming the flag or file and what is wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
pub use gateway_issuer::nats::NatsAuth;
pub use gateway_issuer::{FeedSource, DEFAULT_STATE_DIR};
use serde::Deserialize;

pub use crate::error::ConfigError;

/// Flags of `gateway serve`. Every one may also be set in the TOML file given by
/// `--config` under the same name with `_` for `-`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// TLS on TCP (HTTP/1.1, HTTP/2) and QUIC on UDP (HTTP/3), same port. Default 127.0.0.1:8443.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: callers may present client certificates signed by it (mTLS).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Optional plaintext HTTP/1.1 and h2c listener (behind a TLS-terminating balancer).
    #[arg(long)]
    pub plain_listen: Option<SocketAddr>,
    /// Metrics and status. Default 127.0.0.1:9090.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// trust.json (token.md).
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// The provincial root public key: raw Ed25519, base64url, one line.
    #[arg(long)]
    pub root_key: Option<PathBuf>,
    /// The signed policy: COSE_Sign1, base64url, one line (plain JSON with --dev).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// `file:PATH` (embedded default) or `nats://HOST:PORT/STREAM`.
    #[arg(long)]
    pub feed: Option<String>,
    /// 32 bytes, base64url, one line (needed for card checks).
    #[arg(long)]
    pub pseudonym_key: Option<PathBuf>,
    /// The feed key (feed.md revision 3): 32 bytes, base64url, one line. Given twice
    /// while a new key is rolled out; without it, events need no `mac`.
    #[arg(long)]
    #[serde(default)]
    pub feed_key: Vec<PathBuf>,
    /// callers.json.
    #[arg(long)]
    pub callers: Option<PathBuf>,
    /// Where snapshots are kept, and the development setup when no keys are given.
    /// Default ./gateway-state.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Clock skew tolerated, seconds. Default 30.
    #[arg(long)]
    pub skew: Option<u64>,
    /// Longest token validity, seconds. Default 86400.
    #[arg(long)]
    pub max_validity: Option<u64>,
    /// Seconds without a feed message before the gateway reports itself stale. Default 30.
    #[arg(long)]
    pub stale_after: Option<u64>,
    /// Development mode: accepts an unsigned policy file and says so.
    #[arg(long)]
    #[serde(default)]
    pub dev: bool,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    #[serde(default)]
    pub log_json: bool,
    /// Requests in flight across all connections before answering 503. Default 4096.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Concurrent streams per HTTP/2 or HTTP/3 connection. Default 256.
    #[arg(long)]
    pub max_streams: Option<u32>,
    /// Seconds a client may take to send request headers (HTTP/1.1). Default 10.
    #[arg(long)]
    pub header_timeout: Option<u64>,
    /// Seconds to finish in-flight requests after SIGTERM/SIGINT. Default 10.
    #[arg(long)]
    pub shutdown_grace: Option<u64>,
    /// Tokens held by the signature cache (0 turns it off). Default 1000000.
    #[arg(long)]
    pub sig_cache: Option<usize>,
    /// Seconds between snapshots of the state into `--state-dir` (one is always written
    /// at shutdown; 0: only then). Default 300.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// NATS: a file holding the broker's auth token (one line).
    #[arg(long)]
    pub nats_token_file: Option<PathBuf>,
    /// NATS: a `.creds` file (user JWT and NKey seed).
    #[arg(long)]
    pub nats_creds: Option<PathBuf>,
    /// NATS: a file holding the user's NKey seed (`gateway nats-keygen` makes one).
    #[arg(long)]
    pub nats_nkey: Option<PathBuf>,
    /// NATS: PEM CA bundle for the broker's certificate; TLS to the broker is then required.
    #[arg(long)]
    pub nats_ca: Option<PathBuf>,
    /// NATS: allow a broker that is not on loopback without TLS (`--nats-ca`); `/readyz`
    /// then lists `nats_insecure` under `warnings`.
    #[arg(long)]
    #[serde(default)]
    pub nats_insecure: bool,
    /// The proxy endpoint `/v1/auth`: the request header holding the code. Default x-jkm-code.
    #[arg(long)]
    pub auth_code_header: Option<String>,
    /// The proxy endpoint `/v1/auth`: the request header holding the venue. Default x-jkm-venue.
    #[arg(long)]
    pub auth_venue_header: Option<String>,
    /// The bounds of `api.md` "Limits" (`[limits]` in the TOML file).
    #[command(flatten)]
    #[serde(default)]
    pub limits: crate::limits::LimitArgs,
    /// Testing only: decide as if the clock read this many seconds since the epoch.
    /// Exists in debug (test) builds only; a release build has no way to freeze its
    /// clock, and `/readyz` says `"fixed_clock": true` when it is frozen.
    #[cfg_attr(debug_assertions, arg(long, hide = true))]
    #[cfg_attr(not(debug_assertions), arg(skip))]
    #[serde(skip)]
    pub debug_fixed_now: Option<u64>,
}

impl ServeArgs {
    /// Fills every unset flag from the TOML file, if one is given.
    pub fn merge_file(mut self) -> Result<ServeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::file(&path, e))?;
        let file: ServeArgs = toml::from_str(&text)
            .map_err(|e| ConfigError::file(&path, e.message().replace('\n', " ")))?;
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            listen,
            tls_cert,
            tls_key,
            client_ca,
            plain_listen,
            admin_listen,
            trust,
            root_key,
            policy,
            feed,
            pseudonym_key,
            callers,
            state_dir,
            skew,
            max_validity,
            stale_after,
            max_in_flight,
            max_streams,
            header_timeout,
            shutdown_grace,
            sig_cache,
            snapshot_every,
            nats_token_file,
            nats_creds,
            nats_nkey,
            nats_ca
        );
        if self.feed_key.is_empty() {
            self.feed_key = file.feed_key;
        }
        self.limits.fill_from(file.limits);
        self.dev |= file.dev;
        self.nats_insecure |= file.nats_insecure;
        self.log_json |= file.log_json;
        Ok(self)
    }
}

/// The checked configuration of `gateway serve`, every default applied.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub plain_listen: Option<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub trust: PathBuf,
    pub root_key: PathBuf,
    pub policy: PathBuf,
    pub feed: FeedSource,
    pub pseudonym_key: Option<PathBuf>,
    /// One or two feed keys; none: events need no `mac`.
    pub feed_keys: Vec<PathBuf>,
    pub callers: PathBuf,
    pub state_dir: PathBuf,
    pub skew: u64,
    pub max_validity: u64,
    pub stale_after: Duration,
    pub dev: bool,
    pub log_json: bool,
    pub max_in_flight: usize,
    pub max_streams: u32,
    pub header_timeout: Duration,
    pub shutdown_grace: Duration,
    pub sig_cache: usize,
    pub snapshot_every: Option<Duration>,
    pub nats: NatsAuth,
    /// A non-loopback broker without TLS, allowed by `--nats-insecure`.
    pub nats_insecure: bool,
    pub limits: crate::limits::EdgeLimits,
    pub fixed_now: Option<u64>,
    pub auth_headers: AuthHeaders,
}

/// Whether a `nats://HOST:PORT` names a loopback host.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => hostport,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The request headers `/v1/auth` takes the code and the venue from
/// (`--auth-code-header`, `--auth-venue-header`).
#[derive(Debug, Clone)]
pub struct AuthHeaders {
    /// The code's header.
    pub code: http::HeaderName,
    /// The venue's header.
    pub venue: http::HeaderName,
}

impl Default for AuthHeaders {
    fn default() -> Self {
        AuthHeaders {
            code: http::HeaderName::from_static("x-jkm-code"),
            venue: http::HeaderName::from_static("x-jkm-venue"),
        }
    }
}

/// Feed keys a gateway holds at once: the one in use and the next (feed.md).
pub const MAX_FEED_KEYS: usize = 2;

impl ServeArgs {
    /// Points every unset path at the development setup (the quick start).
    pub fn use_dev_setup(&mut self, dev: &gateway_issuer::DevSetup) {
        self.trust = Some(dev.trust());
        self.root_key = Some(dev.root_pub());
        self.policy = Some(dev.policy());
        self.callers = Some(dev.callers());
        self.pseudonym_key
            .get_or_insert_with(|| dev.pseudonym_key());
        self.tls_cert.get_or_insert_with(|| dev.cert());
        self.tls_key.get_or_insert_with(|| dev.key());
        if self.feed.is_none() {
            self.feed = Some(format!("file:{}", dev.feed().display()));
        }
        if self.feed_key.is_empty() {
            self.feed_key.push(dev.feed_key());
        }
    }

    /// Whether no key material was named at all: the quick start then makes a
    /// development setup in the state directory.
    pub fn is_quick_start(&self) -> bool {
        self.trust.is_none()
            && self.root_key.is_none()
            && self.policy.is_none()
            && self.callers.is_none()
    }

    /// Applies defaults and checks presence; file contents are checked when loaded.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let need = |v: Option<PathBuf>, flag: &str| {
            v.ok_or_else(|| ConfigError::flag(flag, "required (or give none of --trust, --root-key, --policy, --callers for the development quick start)"))
        };
        let state_dir = self
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let feed = match &self.feed {
            Some(f) => FeedSource::parse(f, "feed")?,
            None => FeedSource::File(state_dir.join("feed.jsonl")),
        };
        let positive = |v: Option<u64>, d: u64, flag: &str| match v {
            Some(0) => Err(ConfigError::flag(flag, "must be above 0")),
            Some(v) => Ok(v),
            None => Ok(d),
        };
        let max_in_flight = self.max_in_flight.unwrap_or(4096).max(1);
        let max_streams = self.max_streams.unwrap_or(256).max(1);
        let header_timeout =
            Duration::from_secs(positive(self.header_timeout, 10, "header-timeout")?);
        let limits = self
            .limits
            .resolve(header_timeout, max_in_flight, max_streams)?;
        if self.feed_key.len() > MAX_FEED_KEYS {
            return Err(ConfigError::flag(
                "feed-key",
                format!(
                    "given {} times; at most {MAX_FEED_KEYS} (the key in use and the next)",
                    self.feed_key.len()
                ),
            ));
        }
        let nats_insecure = match &feed {
            FeedSource::Nats { url, .. } if self.nats_ca.is_none() && !is_loopback_url(url) => {
                if !self.nats_insecure {
                    return Err(ConfigError::flag(
                        "feed",
                        format!("{url} is not on loopback: give --nats-ca (TLS to the broker), or --nats-insecure to accept a broker without TLS"),
                    ));
                }
                true
            }
            _ => false,
        };
        Ok(ServeConfig {
            nats_insecure,
            limits,
            listen: self.listen.unwrap_or_else(|| ([127, 0, 0, 1], 8443).into()),
            tls_cert: need(self.tls_cert, "tls-cert")?,
            tls_key: need(self.tls_key, "tls-key")?,
            client_ca: self.client_ca,
            plain_listen: self.plain_listen,
            admin_listen: self
                .admin_listen
                .unwrap_or_else(|| ([127, 0, 0, 1], 9090).into()),
            trust: need(self.trust, "trust")?,
            root_key: need(self.root_key, "root-key")?,
            policy: need(self.policy, "policy")?,
            feed,
            pseudonym_key: self.pseudonym_key,
            feed_keys: self.feed_key,
            callers: need(self.callers, "callers")?,
            state_dir,
            skew: self.skew.unwrap_or(30),
            max_validity: positive(self.max_validity, 86_400, "max-validity")?,
            stale_after: Duration::from_secs(positive(self.stale_after, 30, "stale-after")?),
            dev: self.dev,
            log_json: self.log_json,
            max_in_flight,
            max_streams,
            header_timeout,
            shutdown_grace: Duration::from_secs(self.shutdown_grace.unwrap_or(10)),
            sig_cache: self.sig_cache.unwrap_or(1_000_000),
            snapshot_every: match self.snapshot_every.unwrap_or(300) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            nats: NatsAuth {
                token_file: self.nats_token_file,
                creds: self.nats_creds,
                nkey: self.nats_nkey,
                ca: self.nats_ca,
            },
            fixed_now: self.debug_fixed_now,
            auth_headers: AuthHeaders {
                code: header_name(self.auth_code_header, "x-jkm-code", "auth-code-header")?,
                venue: header_name(self.auth_venue_header, "x-jkm-venue", "auth-venue-header")?,
            },
        })
    }
}

/// A request header's name from a flag (case-insensitive), or `default`.
fn header_name(
    v: Option<String>,
    default: &'static str,
    flag: &str,
) -> Result<http::HeaderName, ConfigError> {
    match v {
        None => Ok(http::HeaderName::from_static(default)),
        Some(n) => http::HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| ConfigError::flag(flag, format!("{n:?} is not a header name"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_brokers() {
        for u in [
            "nats://127.0.0.1:4222",
            "nats://localhost:4222",
            "nats://[::1]:4222",
            "nats://127.9.9.9",
        ] {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in [
            "nats://10.0.0.5:4222",
            "nats://nats.example:4222",
            "nats://[2001:db8::1]:4222",
        ] {
            assert!(!is_loopback_url(u), "{u}");
        }
        let base = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut a = vec![
                "serve",
                "--trust",
                "t",
                "--root-key",
                "r",
                "--policy",
                "p",
                "--callers",
                "c",
                "--tls-cert",
                "x",
                "--tls-key",
                "y",
                "--feed",
                "nats://10.0.0.5:4222/JKM",
            ];
            a.extend_from_slice(extra);
            a
        };
        #[derive(clap::Parser)]
        struct P {
            #[command(subcommand)]
            c: C,
        }
        #[derive(clap::Subcommand)]
        enum C {
            Serve(ServeArgs),
        }
        let resolve = |args: Vec<&str>| {
            let mut v = vec!["gateway"];
            v.extend(args);
            let P { c: C::Serve(a) } = <P as clap::Parser>::parse_from(v);
            a.resolve()
        };
        let e = resolve(base(&[])).unwrap_err();
        assert!(
            e.to_string().contains("--nats-ca") && e.to_string().contains("--nats-insecure"),
            "{e}"
        );
        assert!(resolve(base(&["--nats-insecure"])).unwrap().nats_insecure);
        assert!(
            !resolve(base(&["--nats-ca", "ca.pem"]))
                .unwrap()
                .nats_insecure
        );
    }

    #[test]
    fn feed_sources() {
        assert_eq!(
            FeedSource::parse("file:/x", "feed").unwrap(),
            FeedSource::File("/x".into())
        );
        assert_eq!(
            FeedSource::parse("nats://127.0.0.1:4222/JKM", "feed").unwrap(),
            FeedSource::Nats {
                url: "nats://127.0.0.1:4222".into(),
                stream: "JKM".into()
            }
        );
        assert!(FeedSource::parse("kafka://x", "feed").is_err());
        assert!(FeedSource::parse("nats://host", "feed").is_err());
    }

    #[test]
    fn unknown_toml_keys_are_refused() {
        let e =
            toml::from_str::<ServeArgs>("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(e.message().contains("listen_port"), "{}", e.message());
    }
}
