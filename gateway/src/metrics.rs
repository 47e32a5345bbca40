//! The gateway's metrics, registered once into handles (no ad-hoc names deep in the
//! code); labels come only from closed sets (protocol, route, status class, reason,
//! caller names from the configuration, venue categories of the signed policy in force),
//! never from input.

use std::sync::OnceLock;
use std::time::Duration;

use gateway_core::decide::Decision;
use gateway_core::policy::ShadowDiff;
use gateway_core::Reason;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Transport a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
    H3,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::H1 => "http1",
            Proto::H2 => "http2",
            Proto::H3 => "http3",
        }
    }
}

/// The routes of `api.md`, for labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Verify,
    Batch,
    Stream,
    Card,
    Auth,
    Health,
    Ready,
    /// `/v1/status-lists/…` and `/v1/offline/bundle` (`offline.md`).
    Offline,
    Other,
}

impl Route {
    pub const ALL: [Route; 9] = [
        Route::Verify,
        Route::Batch,
        Route::Stream,
        Route::Card,
        Route::Auth,
        Route::Health,
        Route::Ready,
        Route::Offline,
        Route::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::Verify => "verify",
            Route::Batch => "batch",
            Route::Stream => "stream",
            Route::Card => "card",
            Route::Auth => "auth",
            Route::Health => "healthz",
            Route::Offline => "offline",
            Route::Ready => "readyz",
            Route::Other => "other",
        }
    }
}

/// A phase of a connection or request that can time out (`gateway_timeouts_total{phase}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshake,
    FirstRequest,
    Header,
    Body,
    Idle,
    Request,
    StreamIdle,
    StreamDuration,
    SlowReader,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Handshake,
        Phase::FirstRequest,
        Phase::Header,
        Phase::Body,
        Phase::Idle,
        Phase::Request,
        Phase::StreamIdle,
        Phase::StreamDuration,
        Phase::SlowReader,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::Handshake => "handshake",
            Phase::FirstRequest => "first_request",
            Phase::Header => "header",
            Phase::Body => "body",
            Phase::Idle => "idle",
            Phase::Request => "request",
            Phase::StreamIdle => "stream_idle",
            Phase::StreamDuration => "stream_duration",
            Phase::SlowReader => "slow_reader",
        }
    }
}

/// The transports whose connections are counted and capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
    Admin,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::Quic, Transport::Admin];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
            Transport::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        match self {
            Transport::Tcp => 0,
            Transport::Quic => 1,
            Transport::Admin => 2,
        }
    }
}

/// Why a connection was refused or dropped before it was served.
pub const REFUSALS: [&str; 3] = ["total", "per_ip", "accept_error"];

/// Feed refusals the gateway adds to the parser's kinds (`feed/mod.rs`).
pub const KEY_OLDER: &str = "key_older";
pub const POLICY_VERSION: &str = "policy_version";
pub const TOO_LONG: &str = "too_long";
pub const FEED_REJECTIONS: [&str; 3] = [KEY_OLDER, POLICY_VERSION, TOO_LONG];

/// Statuses whose request counters are registered up front (the others are counted too,
/// through a slower lookup).
const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 405, 413, 429, 500, 503];
const PROTOS: [Proto; 3] = [Proto::H1, Proto::H2, Proto::H3];

type RequestCounters = [[[Counter; STATUSES.len()]; Route::ALL.len()]; PROTOS.len()];

/// `gateway_policy_shadow_total{venue, from, to}` (`policy.md` revision 4): one handle
/// per venue of the policy table and pair of outcomes, registered when first counted (a
/// label set that never happened is not a series). Venues outside the table (a policy's
/// own extra categories) are counted through the registry each time.
#[derive(Default)]
struct ShadowCounters {
    table: [[[OnceLock<Counter>; 3]; 3]; gateway_core::policy::REQUIRED_VENUES.len()],
}

impl ShadowCounters {
    fn count(&self, venue: &str, diff: ShadowDiff) {
        let (from, to) = (diff.from.label(), diff.to.label());
        let code = gateway_core::policy::venue_code(venue);
        match self.table.get(usize::from(code)) {
            Some(v) => v[diff.from as usize][diff.to as usize]
                .get_or_init(|| {
                    let venue = gateway_core::policy::venue_of(code).unwrap_or("other");
                    metrics::counter!("gateway_policy_shadow_total", "venue" => venue, "from" => from, "to" => to)
                })
                .increment(1),
            None => metrics::counter!("gateway_policy_shadow_total", "venue" => venue.to_owned(), "from" => from, "to" => to).increment(1),
        }
    }
}

/// Handles registered at startup.
pub struct Metrics {
    requests: RequestCounters,
    decisions: [Counter; Reason::ALL.len()],
    shadow: ShadowCounters,
    latency: [Histogram; Route::ALL.len()],
    pub status_set_size: Gauge,
    pub feed_position: Gauge,
    pub feed_applied: Counter,
    pub feed_head: Gauge,
    pub feed_lag_messages: Gauge,
    pub feed_lag_seconds: Gauge,
    pub feed_apply_rate: Gauge,
    pub feed_stale: Gauge,
    /// 1 when `/readyz` would answer 200, else 0 (set at each scrape).
    pub ready: Gauge,
    /// The serving certificate's not-after, Unix seconds (set at start).
    pub tls_not_after: Gauge,
    pub sig_cache_hits: Gauge,
    pub sig_cache_misses: Gauge,
    timeouts: [Counter; Phase::ALL.len()],
    connections_open: [Gauge; Transport::ALL.len()],
    connections_refused: [[Counter; REFUSALS.len()]; Transport::ALL.len()],
    pub quic_retries: Counter,
    handle: Option<PrometheusHandle>,
}

impl Metrics {
    /// Registers every handle with the global recorder (installed by the caller, once).
    pub fn register(handle: Option<PrometheusHandle>) -> Metrics {
        let requests = PROTOS.map(|p| {
            Route::ALL.map(|r| {
                STATUSES.map(|s| {
                    metrics::counter!("gateway_requests_total", "protocol" => p.label(), "route" => r.label(), "status" => s.to_string())
                })
            })
        });
        // Series that appear only when something happens are registered now, at zero,
        // so that an alert on their increase sees the first one (deploy/prometheus).
        for kind in gateway_core::feed_event::FeedError::KINDS
            .into_iter()
            .chain(FEED_REJECTIONS)
        {
            metrics::counter!("gateway_feed_rejected_total", "kind" => kind).absolute(0);
        }
        metrics::counter!("gateway_snapshot_refused_total").absolute(0);
        for why in ["not_newer", "too_old", "clock_behind", "feed_gap"] {
            metrics::counter!("gateway_feed_heartbeats_ignored_total", "why" => why).absolute(0);
        }
        metrics::counter!("gateway_snapshots_written_total").absolute(0);
        metrics::counter!("gateway_offline_bytes_served_total").absolute(0);
        metrics::counter!("gateway_log_suppressed_total").absolute(0);
        for g in [
            "gateway_snapshot_position",
            "gateway_snapshot_write_seconds",
            "gateway_snapshot_load_seconds",
        ] {
            metrics::gauge!(g).set(0.0);
        }
        Metrics {
            requests,
            decisions: Reason::ALL
                .map(|r| metrics::counter!("gateway_decisions_total", "reason" => r.label())),
            shadow: ShadowCounters::default(),
            latency: Route::ALL.map(
                |r| metrics::histogram!("gateway_request_duration_seconds", "route" => r.label()),
            ),
            status_set_size: metrics::gauge!("gateway_status_set_size"),
            feed_position: metrics::gauge!("gateway_feed_position"),
            feed_applied: metrics::counter!("gateway_feed_events_applied_total"),
            feed_head: metrics::gauge!("gateway_feed_head"),
            feed_lag_messages: metrics::gauge!("gateway_feed_lag_messages"),
            feed_lag_seconds: metrics::gauge!("gateway_feed_lag_seconds"),
            feed_apply_rate: metrics::gauge!("gateway_feed_apply_rate"),
            feed_stale: metrics::gauge!("gateway_feed_stale"),
            ready: metrics::gauge!("gateway_ready"),
            tls_not_after: metrics::gauge!("gateway_tls_cert_not_after_seconds"),
            sig_cache_hits: metrics::gauge!("gateway_sig_cache_hits"),
            sig_cache_misses: metrics::gauge!("gateway_sig_cache_misses"),
            timeouts: Phase::ALL
                .map(|p| metrics::counter!("gateway_timeouts_total", "phase" => p.label())),
            connections_open: Transport::ALL.map(
                |t| metrics::gauge!("gateway_connections_open", "transport" => t.label()),
            ),
            connections_refused: Transport::ALL.map(|t| {
                REFUSALS.map(|r| {
                    metrics::counter!("gateway_connections_refused_total", "transport" => t.label(), "reason" => r)
                })
            }),
            quic_retries: metrics::counter!("gateway_quic_retries_total"),
            handle,
        }
    }

    /// One decision at `venue`: its reason counted, and where a shadow policy judged
    /// anyone otherwise, `gateway_policy_shadow_total{venue, from, to}` for each.
    pub fn decision(&self, d: &Decision, venue: &str) {
        let r = d.holder.reason;
        if let Some(i) = Reason::ALL.iter().position(|x| *x == r) {
            self.decisions[i].increment(1);
        }
        for diff in d.everyone().filter_map(|j| j.shadow) {
            self.shadow.count(venue, diff);
        }
    }

    /// Something timed out and was ended.
    pub fn timeout(&self, phase: Phase) {
        if let Some(i) = Phase::ALL.iter().position(|x| *x == phase) {
            self.timeouts[i].increment(1);
        }
    }

    /// Connections open now on `t`.
    pub fn connections(&self, t: Transport, open: usize) {
        self.connections_open[t.index()].set(open as f64);
    }

    /// A connection refused on `t`, for `reason` (one of [`REFUSALS`]).
    pub fn refused(&self, t: Transport, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            self.connections_refused[t.index()][i].increment(1);
        }
    }

    /// One finished request (the caller counts its own, see `callers.rs`).
    pub fn request(&self, proto: Proto, route: Route, status: u16, took: Duration) {
        let r = Route::ALL
            .iter()
            .position(|x| *x == route)
            .unwrap_or(Route::ALL.len() - 1);
        self.latency[r].record(took.as_secs_f64());
        let p = PROTOS.iter().position(|x| *x == proto).unwrap_or(0);
        match STATUSES.iter().position(|x| *x == status) {
            Some(s) => self.requests[p][r][s].increment(1),
            None => metrics::counter!("gateway_requests_total", "protocol" => proto.label(), "route" => route.label(), "status" => status.to_string()).increment(1),
        }
    }

    /// Bytes of status lists, updates or bundles served.
    pub fn offline_bytes(&self, n: usize) {
        metrics::counter!("gateway_offline_bytes_served_total").increment(n as u64);
    }

    /// The status lists held, for the gauges: how many, updates held, the oldest's age.
    pub fn status_lists(&self, store: &gateway_core::offline::store::Store, now: u64) {
        let e = store.entries();
        metrics::gauge!("gateway_status_lists").set(e.len() as f64);
        metrics::gauge!("gateway_status_list_updates")
            .set(e.iter().map(|e| e.update_count()).sum::<usize>() as f64);
        let oldest = e.iter().map(|e| e.held().time()).min();
        metrics::gauge!("gateway_status_list_age_seconds")
            .set(oldest.map_or(0.0, |t| now.saturating_sub(t) as f64));
        // How far the most overdue list is past its `ttl` (60 s without one): a gate that
        // caches a list for its ttl finds nothing newer after that.
        let overdue = e
            .iter()
            .map(|e| {
                let l = e.held().list();
                now.saturating_sub(e.held().time())
                    .saturating_sub(l.ttl.unwrap_or(60))
            })
            .max()
            .unwrap_or(0);
        metrics::gauge!("gateway_status_list_overdue_seconds").set(overdue as f64);
    }

    /// A snapshot was loaded at boot.
    pub fn snapshot_loaded(&self, took: Duration) {
        metrics::gauge!("gateway_snapshot_load_seconds").set(took.as_secs_f64());
    }

    /// A snapshot was written.
    pub fn snapshot_written(&self, position: u64, took: Duration) {
        metrics::gauge!("gateway_snapshot_position").set(position as f64);
        metrics::gauge!("gateway_snapshot_write_seconds").set(took.as_secs_f64());
        metrics::counter!("gateway_snapshots_written_total").increment(1);
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        self.handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }
}

/// How often the histograms' recorded samples are folded into their buckets.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the Prometheus recorder for this process, starts its upkeep
/// ([`spawn_upkeep`]) and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.5, 1.0,
        ])
        .ok()?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("gateway_verify_batch_codes".into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1000.0],
        )
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    if let Err(e) = spawn_upkeep(handle.clone()) {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms fold their samples only when scraped");
    }
    Some(handle)
}

/// Folds the histograms' recorded samples into their buckets every [`UPKEEP_EVERY`], on
/// a thread of its own. The exporter keeps every sample a histogram records until an
/// upkeep or a scrape folds it: with neither, the gateway's memory grew by about 20 bytes
/// a request for as long as no one scraped (2.7 MB a second at 135,000 req/s), and the
/// first scrape after a quiet spell folded millions of samples at once on a runtime
/// thread.
pub fn spawn_upkeep(handle: PrometheusHandle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        })
        .map(|_| ())
}
