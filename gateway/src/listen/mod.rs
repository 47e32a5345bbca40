//! Listeners: each adapts its protocol to `http::Request` and calls the one handler.

pub mod quic;
pub mod tcp;
pub mod tls;
