//! TLS and QUIC set-up for a [`Target`].

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::error::{At, ClientError, Phase};
use crate::target::{Identity, Target};

/// A client TLS configuration trusting `ca` (nothing when `None`), offering `alpn`, and
/// presenting `identity` when given.
pub fn tls_config(
    ca: Option<&CertificateDer<'static>>,
    alpn: &[u8],
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        roots.add(ca.clone()).at(Phase::Connect)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .at(Phase::Connect)?
    .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .at(Phase::Connect)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

/// A QUIC connection (ALPN h3) to `t`, and the endpoint whose UDP socket carries it
/// (keep it as long as the connection).
pub async fn connect_quic(t: &Target) -> Result<(quinn::Endpoint, quinn::Connection), ClientError> {
    let tls = tls_config(t.ca.as_ref(), b"h3", t.identity.as_ref())?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).at(Phase::Connect)?;
    let bind: SocketAddr = if t.addr.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        udp_socket(bind).at(Phase::Connect)?,
        quinn::default_runtime().ok_or_else(|| ClientError::new(Phase::Connect, "no runtime"))?,
    )
    .at(Phase::Connect)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(t.addr, &t.server_name)
        .at(Phase::Connect)?
        .await
        .at(Phase::Connect)?;
    Ok((endpoint, conn))
}

/// A UDP socket bound to `addr` with receive and send buffers of up to 4 MiB (the kernel
/// grants at most `net.core.rmem_max` / `wmem_max`), as the gateway's HTTP/3 socket has:
/// with Linux's default of about 208 KiB, bursts were dropped and every drop stalled its
/// connection for a loss-recovery wait. The QUIC client uses it, and so does the
/// benchmarks' minimal HTTP/3 server, so that both sides of a comparison have the same.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}
