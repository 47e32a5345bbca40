//! One connection to the gateway, over HTTP/1.1, HTTP/2 (TLS or h2c) or HTTP/3 (quinn +
//! h3), with one way to send a request and read the whole answer. HTTP/2 and HTTP/3
//! connections are shared by several workers (streams); HTTP/1.1 carries one request at
//! a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Which protocol.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    H1,
    H2,
    H3,
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientError {
    Connect,
    Send,
    Body,
    Timeout,
}

impl ClientError {
    pub fn name(self) -> &'static str {
        match self {
            ClientError::Connect => "connect",
            ClientError::Send => "send",
            ClientError::Body => "body",
            ClientError::Timeout => "timeout",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    /// Plaintext (HTTP/1.1 or h2c) instead of TLS; not for HTTP/3.
    pub plain: bool,
    pub ca: Option<CertificateDer<'static>>,
    /// Name the certificate is checked against.
    pub server_name: String,
    pub api_key: String,
    /// Longest wait for one answer.
    pub timeout: Duration,
}

/// An open connection.
#[derive(Clone)]
pub enum Conn {
    H1(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        /// Kept so the UDP socket lives as long as the connection.
        _endpoint: quinn::Endpoint,
    },
}

fn tls(t: &Target, alpn: &[u8]) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &t.ca {
        roots.add(ca.clone()).map_err(|_| ClientError::Connect)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| ClientError::Connect)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

impl Conn {
    pub async fn connect(t: &Target) -> Result<Conn, ClientError> {
        let fut = Self::connect_inner(t);
        tokio::time::timeout(t.timeout, fut)
            .await
            .map_err(|_| ClientError::Connect)?
    }

    async fn connect_inner(t: &Target) -> Result<Conn, ClientError> {
        let name = ServerName::try_from(t.server_name.clone()).map_err(|_| ClientError::Connect)?;
        if t.protocol == Protocol::H3 {
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls(t, b"h3")?)
                .map_err(|_| ClientError::Connect)?;
            let bind: SocketAddr = if t.addr.is_ipv6() {
                "[::1]:0".parse().map_err(|_| ClientError::Connect)?
            } else {
                "127.0.0.1:0".parse().map_err(|_| ClientError::Connect)?
            };
            let mut endpoint = quinn::Endpoint::client(bind).map_err(|_| ClientError::Connect)?;
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
            let conn = endpoint
                .connect(t.addr, &t.server_name)
                .map_err(|_| ClientError::Connect)?
                .await
                .map_err(|_| ClientError::Connect)?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                .await
                .map_err(|_| ClientError::Connect)?;
            tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            });
            return Ok(Conn::H3 {
                send,
                _endpoint: endpoint,
            });
        }
        let tcp = TcpStream::connect(t.addr)
            .await
            .map_err(|_| ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        macro_rules! handshake {
            ($io:expr) => {
                match t.protocol {
                    Protocol::H1 => {
                        let (send, conn) = hyper::client::conn::http1::handshake($io)
                            .await
                            .map_err(|_| ClientError::Connect)?;
                        tokio::spawn(conn);
                        Conn::H1(Arc::new(tokio::sync::Mutex::new(send)))
                    }
                    _ => {
                        let (send, conn) =
                            hyper::client::conn::http2::handshake(TokioExecutor::new(), $io)
                                .await
                                .map_err(|_| ClientError::Connect)?;
                        tokio::spawn(conn);
                        Conn::H2(send)
                    }
                }
            };
        }
        if t.plain {
            return Ok(handshake!(TokioIo::new(tcp)));
        }
        let alpn: &[u8] = if t.protocol == Protocol::H1 {
            b"http/1.1"
        } else {
            b"h2"
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls(t, alpn)?));
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|_| ClientError::Connect)?;
        Ok(handshake!(TokioIo::new(stream)))
    }

    /// POSTs `body` to `path` and reads the whole answer: (status, body).
    pub async fn post(
        &self,
        t: &Target,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> Result<(u16, Bytes), ClientError> {
        let fut = self.post_inner(t, path, body, json);
        tokio::time::timeout(t.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// GETs `path` (no credentials needed: `/healthz`): (status, body).
    pub async fn get(&self, t: &Target, path: &str) -> Result<(u16, Bytes), ClientError> {
        let fut = self.send(t, http::Method::GET, path, Bytes::new(), true);
        tokio::time::timeout(t.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn post_inner(
        &self,
        t: &Target,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> Result<(u16, Bytes), ClientError> {
        self.send(t, http::Method::POST, path, body, json).await
    }

    async fn send(
        &self,
        t: &Target,
        method: http::Method,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> Result<(u16, Bytes), ClientError> {
        let scheme = if t.plain { "http" } else { "https" };
        let b = Request::builder()
            .method(method)
            .uri(format!("{scheme}://{}{path}", t.server_name))
            .header("authorization", format!("Bearer {}", t.api_key))
            .header(
                "content-type",
                if json {
                    "application/json"
                } else {
                    "text/plain"
                },
            );
        match self {
            Conn::H1(s) => {
                let req = b
                    .header("host", t.server_name.as_str())
                    .body(Full::new(body))
                    .map_err(|_| ClientError::Send)?;
                let mut s = s.lock().await;
                s.ready().await.map_err(|_| ClientError::Send)?;
                let resp = s.send_request(req).await.map_err(|_| ClientError::Send)?;
                read(resp).await
            }
            Conn::H2(s) => {
                let req = b.body(Full::new(body)).map_err(|_| ClientError::Send)?;
                let resp = s
                    .clone()
                    .send_request(req)
                    .await
                    .map_err(|_| ClientError::Send)?;
                read(resp).await
            }
            Conn::H3 { send, .. } => {
                let req = b.body(()).map_err(|_| ClientError::Send)?;
                let mut s = send.clone();
                let mut stream = s.send_request(req).await.map_err(|_| ClientError::Send)?;
                if !body.is_empty() {
                    stream
                        .send_data(body)
                        .await
                        .map_err(|_| ClientError::Send)?;
                }
                stream.finish().await.map_err(|_| ClientError::Send)?;
                let resp = stream
                    .recv_response()
                    .await
                    .map_err(|_| ClientError::Send)?;
                let mut out = Vec::new();
                while let Some(mut chunk) =
                    stream.recv_data().await.map_err(|_| ClientError::Body)?
                {
                    let n = chunk.remaining();
                    out.extend_from_slice(&chunk.copy_to_bytes(n));
                }
                Ok((resp.status().as_u16(), Bytes::from(out)))
            }
        }
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<(u16, Bytes), ClientError> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| ClientError::Body)?
        .to_bytes();
    Ok((status, body))
}
