//! Real clients for each protocol: HTTP/1.1 and HTTP/2 over TLS (hyper + tokio-rustls),
//! HTTP/3 (quinn + h3), and plaintext HTTP/1.1 for the admin port. One `send` for all,
//! so a test is written once and run for every protocol.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
    H3,
}

pub const ALL: [Proto; 3] = [Proto::H1, Proto::H2, Proto::H3];

pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A client certificate chain and its key, for mTLS.
pub type Identity = (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// A client TLS configuration trusting `ca`, offering `alpn`, optionally with a client
/// certificate.
pub fn tls_config(
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    identity: Option<&Identity>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

/// A connection of one protocol to the gateway's TLS port.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        /// Kept so the client's UDP socket lives as long as the client.
        _endpoint: quinn::Endpoint,
    },
}

impl Client {
    pub async fn connect(
        proto: Proto,
        addr: std::net::SocketAddr,
        ca: &CertificateDer<'static>,
    ) -> Client {
        Self::connect_as(proto, addr, ca, None).await
    }

    /// Connects presenting a client certificate when `identity` is given.
    pub async fn connect_as(
        proto: Proto,
        addr: std::net::SocketAddr,
        ca: &CertificateDer<'static>,
        identity: Option<&Identity>,
    ) -> Client {
        let name = ServerName::try_from("localhost").expect("name");
        match proto {
            Proto::H1 | Proto::H2 => {
                let alpn: &[u8] = if proto == Proto::H1 {
                    b"http/1.1"
                } else {
                    b"h2"
                };
                let connector =
                    tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca, alpn, identity)));
                let tcp = TcpStream::connect(addr).await.expect("tcp connect");
                let tls = connector.connect(name, tcp).await.expect("tls handshake");
                let io = TokioIo::new(tls);
                if proto == Proto::H1 {
                    let (send, conn) = hyper::client::conn::http1::handshake(io)
                        .await
                        .expect("h1 handshake");
                    tokio::spawn(conn);
                    Client::H1(send)
                } else {
                    let (send, conn) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                            .await
                            .expect("h2 handshake");
                    tokio::spawn(conn);
                    Client::H2(send)
                }
            }
            Proto::H3 => {
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls_config(
                    ca, b"h3", identity,
                ))
                .expect("quic tls");
                let mut endpoint =
                    quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("udp");
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint
                    .connect(addr, "localhost")
                    .expect("quic connect")
                    .await
                    .expect("quic handshake");
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                    .await
                    .expect("h3");
                tokio::spawn(async move {
                    let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
                });
                Client::H3 {
                    send,
                    _endpoint: endpoint,
                }
            }
        }
    }

    /// Sends a request with a whole body and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body: Bytes = body.into();
        match self {
            Client::H1(s) => {
                let req = b
                    .header("host", "localhost")
                    .body(full(body))
                    .expect("request");
                read(s.send_request(req).await.expect("h1 response")).await
            }
            Client::H2(s) => {
                let req = b.body(full(body)).expect("request");
                read(s.send_request(req).await.expect("h2 response")).await
            }
            Client::H3 { send: s, .. } => {
                let req = b.body(()).expect("request");
                let mut stream = s.send_request(req).await.expect("h3 request");
                if !body.is_empty() {
                    stream.send_data(body).await.expect("h3 body");
                }
                stream.finish().await.expect("h3 finish");
                let resp = stream.recv_response().await.expect("h3 response");
                let mut out = Vec::new();
                while let Some(mut chunk) = stream.recv_data().await.expect("h3 data") {
                    let n = chunk.remaining();
                    out.extend_from_slice(&chunk.copy_to_bytes(n));
                }
                Answer {
                    status: resp.status(),
                    headers: resp.headers().clone(),
                    body: Bytes::from(out),
                }
            }
        }
    }

    /// POST JSON with a bearer key.
    pub async fn post(&mut self, path: &str, key: &str, body: impl Into<Bytes>) -> Answer {
        let auth = format!("Bearer {key}");
        self.send(
            Method::POST,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .expect("body within 30 s")
        .expect("body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET on a plaintext HTTP/1.1 port (admin), `None` if it cannot connect.
pub async fn get_plain(addr: std::net::SocketAddr, path: &str) -> Option<Answer> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "localhost")
        .body(full(Bytes::new()))
        .ok()?;
    let resp = send.send_request(req).await.ok()?;
    Some(read(resp).await)
}

/// The sending side of a request body that stays open, fed one line at a time.
pub struct Lines(tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::io::Error>>);

impl Lines {
    /// Sends `line` and a newline; false once the request is gone.
    pub async fn send(&self, line: impl std::fmt::Display) -> bool {
        self.0
            .send(Ok(http_body::Frame::data(Bytes::from(format!("{line}\n")))))
            .await
            .is_ok()
    }
}

/// A `POST /v1/verify/stream` request whose body stays open until the `Lines` is dropped.
pub fn stream_request(api_key: &str) -> (Request<ReqBody>, Lines) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let body =
        http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
            .boxed_unsync();
    let req = Request::post("https://localhost/v1/verify/stream")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {api_key}"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .expect("request");
    (req, Lines(tx))
}
