//! The flags (`cli.md`, "loadtest"); what they resolve to is `setup.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use gateway_issuer::flags::{FeedKeyArg, NatsArgs};

use gateway_client::Protocol;

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
    /// Lean generator for the timed loop: answers are counted by status and not checked
    /// against the expected decision, and HTTP/2 and HTTP/3 go through minimal clients
    /// that write and read frames by hand (HTTP/2's open loop without a task per
    /// request). Check correctness with a run without it.
    #[arg(long)]
    pub lean: bool,
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
    /// Seconds of warm-up, not counted (an open loop's rate rises through it from a
    /// tenth to `--rate`).
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
    /// A shadow policy the gateway is trying (signed, checked with --root-key): the
    /// `shadow` kind of --mix sends codes its table judges otherwise than the policy in
    /// force (`policy.md` revision 4).
    #[arg(long)]
    pub shadow_policy: Option<PathBuf>,
    /// The gateway's admin address (HOST:PORT, plain HTTP): the report then shows how
    /// much `gateway_policy_shadow_total` grew over the run.
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
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

impl Args {
    /// Requests in flight (closed loop), from --streams when given.
    pub fn concurrency(&self) -> usize {
        match self.streams {
            Some(s) => (s * self.connections).max(1),
            None => self.concurrency.max(1),
        }
    }
}
