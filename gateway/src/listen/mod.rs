//! Listeners: each adapts its protocol to `http::Request` and calls the one handler;
//! `guard` holds what bounds their connections, `h3guard` what bounds HTTP/3's buffers,
//! `udp` the socket HTTP/3 listens on.

pub mod guard;
pub mod h3guard;
pub mod quic;
pub mod tcp;
pub mod tls;
pub mod udp;
