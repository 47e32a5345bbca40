//! Connection limits: the HTTP/1.1 header read timeout and the HTTP/2 stream limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::tls_config;
use crate::support::{Gateway, Options};

fn tls(gw: &Gateway, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(tls_config(&gw.ca, alpn, None)))
}

#[tokio::test]
async fn a_client_slow_to_send_headers_is_cut_off() {
    let gw = Gateway::start(Options {
        args: vec!["--header-timeout".into(), "1".into()],
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(gw.listen).await.unwrap();
    let mut s = tls(&gw, b"http/1.1")
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    // The server answers 408 or closes; either way the read ends, well before our deadline.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    // Not long before the 1 s timeout (its clock may start at accept, before the handshake).
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "closed before the timeout"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn http2_advertises_the_stream_limit() {
    let gw = Gateway::start(Options {
        args: vec!["--max-streams".into(), "7".into()],
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(gw.listen).await.unwrap();
    let s = tls(&gw, b"h2")
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut client, mut conn) = h2::client::handshake(s).await.unwrap();
    // One request round trip, so the server's SETTINGS have surely been applied.
    let req = http::Request::get("https://localhost/healthz")
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::select! {
        r = resp => r.unwrap(),
        _ = &mut conn => panic!("connection ended"),
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(conn.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn sigterm_closes_quic_connections_with_an_application_code() {
    let mut gw = Gateway::start(Options::default()).await;
    let (_endpoint, conn) = gw.quic().await;
    gw.terminate();
    let reason = tokio::time::timeout(Duration::from_secs(30), conn.closed())
        .await
        .unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code,
                quinn::VarInt::from_u32(gateway::listen::quic::CLOSE_CODE)
            );
        }
        other => panic!("closed by {other:?}"),
    }
    assert!(gw.wait_exit().await.success());
}
