//! The gateway: TLS HTTP/1.1, HTTP/2 and HTTP/3 around `gateway-core`, the feed, the
//! callers, metrics, and the issuing side. All I/O lives here; every decision is the
//! core's.

#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod callers;
pub mod cli;
pub mod config;
pub mod dev;
pub mod distinct;
pub mod feed;
pub mod issue;
pub mod limits;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod owner_only;
pub mod pool;
pub mod probe;
pub mod publish;
pub mod purge;
pub mod registry;
pub mod serve;
pub mod service;

/// Seconds since the epoch, from the system clock (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
