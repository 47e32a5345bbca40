//! The gateway: TLS HTTP/1.1, HTTP/2 and HTTP/3 around `gateway-core`, the feed, the
//! callers, metrics, and the command line (whose issuing commands run `gateway-issuer`).
//! All I/O lives here; every decision is the core's.

#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod body;
pub mod callers;
pub mod cli;
pub mod config;
pub mod distinct;
pub mod error;
pub mod feed;
pub mod issue;
pub mod limits;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod pool;
pub mod probe;
pub mod publish;
pub mod publish_list;
pub mod purge;
pub mod receipt;
pub mod rollout;
pub mod sched;
pub mod serve;
pub mod service;
pub mod slots;

pub use gateway_issuer::unix_now;
