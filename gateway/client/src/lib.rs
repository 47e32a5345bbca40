//! A client of the gateway's API over HTTP/1.1, HTTP/2 (TLS or h2c) and HTTP/3 (quinn +
//! h3): one [`Conn`] for every protocol, one way to send a request and read the whole
//! [`Answer`], typed [`ClientError`]s that say in which phase a request failed.
//!
//! `loadtest` drives the gateway with it, and the end-to-end and load-test suites talk
//! to the real binary through it, so a request is written once for all three protocols.
//! Nothing here panics on what the server sends.

#![warn(missing_docs)]

mod answer;
mod conn;
mod error;
mod fields;
mod plain;
mod raw_h2;
mod raw_h3;
mod stream;
mod target;
mod tls;

pub use answer::Answer;
pub use conn::{full, Conn, ReqBody, ResponseFuture, MAX_ANSWER};
pub use error::{ClientError, Phase};
pub use plain::get_plain;
pub use raw_h2::{OnAnswer, RawH2};
pub use raw_h3::RawH3;
pub use stream::{stream_request, Lines};
pub use target::{Identity, Protocol, Target};
pub use tls::{connect_quic, tls_config, udp_socket};
