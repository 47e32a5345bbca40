//! The bounds of `api.md` "Limits": every phase of a connection in time, every head in
//! size, connections in number (in total and per client address), and each caller's
//! share of the work in flight. Flags (and `[limits]` in the TOML file) are parsed here
//! into [`EdgeLimits`], which every listener and the request handler read.

use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::error::ConfigError;

/// Flags for every bound; each may be set under `[limits]` in the TOML file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Seconds for a TLS or QUIC handshake to complete. Default 10.
    #[arg(long)]
    pub handshake_timeout: Option<u64>,
    /// Seconds from accept to the first complete request head, protocol detection
    /// included (a silent or half-preface connection is closed). Default 10.
    #[arg(long)]
    pub first_request_timeout: Option<u64>,
    /// Seconds a client may take to send a whole request body (then 408). Default 10.
    #[arg(long)]
    pub body_timeout: Option<u64>,
    /// Seconds a connection may stay open with nothing in flight (every protocol). Default 60.
    #[arg(long)]
    pub idle_timeout: Option<u64>,
    /// Seconds a request may stay in flight, its answer included (a reader that does not
    /// take the answer up is cut off). Default 30.
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Seconds between HTTP/2 keep-alive pings on a quiet connection; a ping unanswered
    /// for as long closes it. Default 20.
    #[arg(long)]
    pub h2_ping_interval: Option<u64>,
    /// Seconds `/v1/verify/stream` may wait for its next line before it is ended. Default 60.
    #[arg(long)]
    pub stream_idle_timeout: Option<u64>,
    /// Longest life of one `/v1/verify/stream`, seconds; it then ends after its last
    /// answer. Default 3600.
    #[arg(long)]
    pub stream_max_duration: Option<u64>,
    /// Largest request head in bytes: HTTP/1.1 head, HTTP/2 header list, HTTP/3 field
    /// section and any HTTP/3 frame other than DATA. Default 16384.
    #[arg(long)]
    pub max_head_bytes: Option<usize>,
    /// Connections open at once, TCP and QUIC each (new ones beyond are refused at once). Default 10000.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address, TCP and QUIC each. Default 256.
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// QUIC handshakes in progress above which clients must first prove their address
    /// with a Retry; `always`, or a number. Default 64.
    #[arg(long)]
    pub quic_retry_above: Option<String>,
    /// Requests one caller may have in flight (its share of --max-in-flight). Default
    /// a quarter of --max-in-flight.
    #[arg(long)]
    pub caller_max_in_flight: Option<usize>,
    /// `/v1/verify/stream` streams open at once, all callers. Default 1024.
    #[arg(long)]
    pub max_open_streams: Option<usize>,
    /// `/v1/verify/stream` streams one caller may have open. Default 64.
    #[arg(long)]
    pub caller_max_open_streams: Option<usize>,
    /// Threads verifying signatures off the I/O threads. Default: one per CPU.
    #[arg(long)]
    pub verify_threads: Option<usize>,
    /// Verifications waiting for those threads before new ones are refused (503). Default 8192.
    #[arg(long)]
    pub verify_queue: Option<usize>,
    /// Scheduling policy of every thread: `batch` (Linux `SCHED_BATCH`: a thread woken by
    /// the network does not preempt a running verification) or `normal` (the system's
    /// default). Default batch.
    #[arg(long, value_enum)]
    pub sched_policy: Option<crate::sched::SchedPolicy>,
    /// Failed signatures one caller may cause per second (burst of one second), or 1% of
    /// its rate_per_s where that is more; beyond, its uncached codes get 429 for a while.
    /// Default 100.
    #[arg(long)]
    pub caller_bad_signatures_per_s: Option<u32>,
    /// Bytes a client may send on one HTTP/3 (QUIC) stream ahead of what the gateway has
    /// read, out-of-order data included (QUIC's stream flow-control window). Default
    /// 262144.
    #[arg(long)]
    pub quic_stream_window: Option<u64>,
    /// Bytes a client may send on one QUIC connection ahead of what the gateway has read,
    /// all its streams together (the connection's flow-control window): what one
    /// connection can make the gateway hold. Default 1048576.
    #[arg(long)]
    pub quic_conn_window: Option<u64>,
    /// Bytes the gateway keeps queued for sending on one QUIC connection (answers a slow
    /// reader has not taken yet). Default 1048576.
    #[arg(long)]
    pub quic_send_window: Option<u64>,
}

/// When QUIC asks for address validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    Always,
    /// When more than this many handshakes are in progress.
    Above(usize),
}

/// Every bound, defaults applied.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub handshake_timeout: Duration,
    pub first_request_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub h2_ping_interval: Duration,
    pub stream_idle_timeout: Duration,
    pub stream_max_duration: Duration,
    pub max_head_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub quic_retry: RetryPolicy,
    pub max_in_flight: usize,
    pub caller_max_in_flight: usize,
    pub max_open_streams: usize,
    pub caller_max_open_streams: usize,
    pub max_streams_per_conn: u32,
    pub verify_threads: usize,
    pub verify_queue: usize,
    pub caller_bad_signatures_per_s: u32,
    pub quic_stream_window: u64,
    pub quic_conn_window: u64,
    pub quic_send_window: u64,
}

/// How long a connection told to close may take to finish what it has in flight before
/// it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

impl LimitArgs {
    /// Fills every unset field from `file`.
    pub fn fill_from(&mut self, file: LimitArgs) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            handshake_timeout,
            first_request_timeout,
            body_timeout,
            idle_timeout,
            request_timeout,
            h2_ping_interval,
            stream_idle_timeout,
            stream_max_duration,
            max_head_bytes,
            max_connections,
            max_connections_per_ip,
            quic_retry_above,
            caller_max_in_flight,
            max_open_streams,
            caller_max_open_streams,
            verify_threads,
            verify_queue,
            sched_policy,
            caller_bad_signatures_per_s,
            quic_stream_window,
            quic_conn_window,
            quic_send_window
        );
    }

    /// Applies the defaults; `header_timeout`, `max_in_flight` and `max_streams` are the
    /// older flags of `serve`, already resolved.
    pub fn resolve(
        self,
        header_timeout: Duration,
        max_in_flight: usize,
        max_streams: u32,
    ) -> Result<EdgeLimits, ConfigError> {
        let secs = |v: Option<u64>, d: u64, flag: &str| match v {
            Some(0) => Err(ConfigError::flag(flag, "must be above 0")),
            Some(v) => Ok(Duration::from_secs(v)),
            None => Ok(Duration::from_secs(d)),
        };
        let count = |v: Option<usize>, d: usize, flag: &str| match v {
            Some(0) => Err(ConfigError::flag(flag, "must be above 0")),
            Some(v) => Ok(v),
            None => Ok(d),
        };
        let quic_retry = match self.quic_retry_above.as_deref() {
            None => RetryPolicy::Above(64),
            Some("always") => RetryPolicy::Always,
            Some(n) => RetryPolicy::Above(n.parse().map_err(|_| {
                ConfigError::flag("quic-retry-above", "expected `always` or a number")
            })?),
        };
        let max_head_bytes = count(self.max_head_bytes, 16 * 1024, "max-head-bytes")?;
        if max_head_bytes < 1024 {
            return Err(ConfigError::flag("max-head-bytes", "must be at least 1024"));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // QUIC windows: at least a full-size request body's worth of a frame (16 KiB),
        // at most what a QUIC variable-length integer holds.
        let window = |v: Option<u64>, d: u64, flag: &str| match v {
            Some(v) if !(16_384..=(1 << 62) - 1).contains(&v) => Err(ConfigError::flag(
                flag,
                "must be between 16384 and 2^62 - 1 bytes",
            )),
            Some(v) => Ok(v),
            None => Ok(d),
        };
        let quic_stream_window = window(self.quic_stream_window, 256 * 1024, "quic-stream-window")?;
        let quic_conn_window = window(self.quic_conn_window, 1024 * 1024, "quic-conn-window")?;
        if quic_conn_window < quic_stream_window {
            return Err(ConfigError::flag(
                "quic-conn-window",
                "must be at least --quic-stream-window",
            ));
        }
        Ok(EdgeLimits {
            handshake_timeout: secs(self.handshake_timeout, 10, "handshake-timeout")?,
            first_request_timeout: secs(self.first_request_timeout, 10, "first-request-timeout")?,
            header_timeout,
            body_timeout: secs(self.body_timeout, 10, "body-timeout")?,
            idle_timeout: secs(self.idle_timeout, 60, "idle-timeout")?,
            request_timeout: secs(self.request_timeout, 30, "request-timeout")?,
            h2_ping_interval: secs(self.h2_ping_interval, 20, "h2-ping-interval")?,
            stream_idle_timeout: secs(self.stream_idle_timeout, 60, "stream-idle-timeout")?,
            stream_max_duration: secs(self.stream_max_duration, 3600, "stream-max-duration")?,
            max_head_bytes,
            max_connections: count(self.max_connections, 10_000, "max-connections")?,
            max_connections_per_ip: count(
                self.max_connections_per_ip,
                256,
                "max-connections-per-ip",
            )?,
            quic_retry,
            max_in_flight,
            caller_max_in_flight: count(
                self.caller_max_in_flight,
                (max_in_flight / 4).max(1),
                "caller-max-in-flight",
            )?
            .min(max_in_flight),
            max_open_streams: count(self.max_open_streams, 1024, "max-open-streams")?,
            caller_max_open_streams: count(
                self.caller_max_open_streams,
                64,
                "caller-max-open-streams",
            )?,
            max_streams_per_conn: max_streams,
            verify_threads: count(self.verify_threads, cpus, "verify-threads")?,
            verify_queue: count(self.verify_queue, 8192, "verify-queue")?,
            caller_bad_signatures_per_s: match self.caller_bad_signatures_per_s {
                Some(0) => {
                    return Err(ConfigError::flag(
                        "caller-bad-signatures-per-s",
                        "must be above 0",
                    ))
                }
                Some(v) => v,
                None => 100,
            },
            quic_stream_window,
            quic_conn_window,
            quic_send_window: window(self.quic_send_window, 1024 * 1024, "quic-send-window")?,
        })
    }
}
