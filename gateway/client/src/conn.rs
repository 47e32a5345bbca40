//! One open connection and the one way to send a request on it.
//!
//! HTTP/2 and HTTP/3 connections are shared by several tasks (one stream each); an
//! HTTP/1.1 connection carries one request at a time, so its sender sits behind a lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::answer::Answer;
use crate::error::{At, ClientError, Phase};
use crate::raw_h2::{OnAnswer, RawH2};
use crate::raw_h3::RawH3;
use crate::target::{Protocol, Target};
use crate::tls::{connect_quic, tls_config};

/// A request body: whole bytes ([`full`]) or a stream
/// ([`stream_request`](crate::stream_request)).
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request body from whole bytes.
pub fn full(b: impl Into<Bytes>) -> ReqBody {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An answer's head on its way, its body still to be read (a request already sent).
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, ClientError>> + Send>>;

type H1 = hyper::client::conn::http1::SendRequest<ReqBody>;
type H2 = hyper::client::conn::http2::SendRequest<ReqBody>;

/// An open connection; cloning shares it.
#[derive(Clone)]
pub enum Conn {
    /// HTTP/1.1: one request at a time.
    H1(Arc<tokio::sync::Mutex<H1>>),
    /// HTTP/2: one stream per request.
    H2(H2),
    /// HTTP/3: one stream per request.
    H3 {
        /// Opens request streams.
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        /// Kept so that the UDP socket lives as long as the connection.
        endpoint: quinn::Endpoint,
    },
    /// HTTP/2 written and read by hand ([`RawH2`]): for load generation.
    LeanH2(Arc<RawH2>),
    /// HTTP/3 written and read by hand ([`RawH3`]): for load generation.
    LeanH3(Arc<RawH3>),
}

impl Conn {
    /// Connects to `t` within its timeout.
    pub async fn connect(t: &Target) -> Result<Conn, ClientError> {
        tokio::time::timeout(t.timeout, Self::connect_inner(t))
            .await
            .map_err(|_| ClientError::new(Phase::Connect, "timed out"))?
    }

    async fn connect_inner(t: &Target) -> Result<Conn, ClientError> {
        if t.protocol == Protocol::H3 && t.lean {
            return Ok(Conn::LeanH3(Arc::new(RawH3::connect(t).await?)));
        }
        if t.protocol == Protocol::H2 && t.lean {
            return Ok(Conn::LeanH2(Arc::new(RawH2::connect(t).await?)));
        }
        if t.protocol == Protocol::H3 {
            let (endpoint, conn) = connect_quic(t).await?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                .await
                .at(Phase::Connect)?;
            tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            });
            return Ok(Conn::H3 { send, endpoint });
        }
        let tcp = TcpStream::connect(t.addr).await.at(Phase::Connect)?;
        let _ = tcp.set_nodelay(true);
        if t.plain {
            return handshake(t.protocol, TokioIo::new(tcp)).await;
        }
        let name = ServerName::try_from(t.server_name.clone()).at(Phase::Connect)?;
        let tls = tls_config(t.ca.as_ref(), t.protocol.alpn(), t.identity.as_ref())?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .at(Phase::Connect)?;
        handshake(t.protocol, TokioIo::new(stream)).await
    }

    /// Sends `method path` with exactly `headers` (and, on HTTP/1.1, `host`) and a whole
    /// body, and reads the whole answer, within the target's timeout.
    pub async fn request(
        &self,
        t: &Target,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        match self {
            Conn::LeanH2(raw) => {
                return in_time(t, raw.request(t, &method, path, headers, body)).await
            }
            Conn::LeanH3(raw) => {
                return in_time(t, raw.request(t, &method, path, headers, &body)).await
            }
            _ => {}
        }
        let mut b = Request::builder().method(method).uri(format!(
            "{}://{}{path}",
            t.scheme(),
            t.server_name
        ));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        in_time(t, self.send(t, b, body)).await
    }

    /// POSTs `body` as `content_type` with the target's bearer key.
    pub async fn post(
        &self,
        t: &Target,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Answer, ClientError> {
        let auth = bearer(t);
        let (headers, n) = post_headers(content_type, &auth);
        self.request(t, Method::POST, path, &headers[..n], body)
            .await
    }

    /// Starts the same POST as [`post`](Conn::post) and returns at once, the answer
    /// handed to `on_answer` when it comes: only on a lean HTTP/2 connection (an open
    /// loop then needs no task per request). Otherwise, or if the connection takes no
    /// more requests, `on_answer` comes back uncalled.
    pub fn submit_post(
        &self,
        t: &Target,
        path: &str,
        body: Bytes,
        content_type: &str,
        on_answer: OnAnswer,
    ) -> Result<(), OnAnswer> {
        let Conn::LeanH2(raw) = self else {
            return Err(on_answer);
        };
        let auth = bearer(t);
        let (headers, n) = post_headers(content_type, &auth);
        raw.submit(t, &Method::POST, path, &headers[..n], body, on_answer)
            .map_err(|(f, _)| f)
    }

    /// GETs `path` with no credentials (`/healthz`).
    pub async fn get(&self, t: &Target, path: &str) -> Result<Answer, ClientError> {
        self.request(t, Method::GET, path, &[], Bytes::new()).await
    }

    async fn send(
        &self,
        t: &Target,
        b: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        match self {
            Conn::H1(_) | Conn::H2(_) => {
                let b = if matches!(self, Conn::H1(_)) {
                    b.header("host", t.server_name.as_str())
                } else {
                    b
                };
                let req = b.body(full(body)).at(Phase::Send)?;
                read(self.start(req).await?.await?).await
            }
            Conn::LeanH2(_) | Conn::LeanH3(_) => Err(ClientError::new(
                Phase::Send,
                "sent by the lean client's request",
            )),
            Conn::H3 { send, .. } => {
                let req = b.body(()).at(Phase::Send)?;
                let mut stream = send.clone().send_request(req).await.at(Phase::Send)?;
                if !body.is_empty() {
                    stream.send_data(body).await.at(Phase::Send)?;
                }
                stream.finish().await.at(Phase::Send)?;
                let resp = stream.recv_response().await.at(Phase::Send)?;
                let mut out = Vec::new();
                while let Some(mut chunk) = stream.recv_data().await.at(Phase::Body)? {
                    let n = chunk.remaining();
                    if out.len() + n > MAX_ANSWER {
                        return Err(ClientError::new(Phase::Body, "answer over its limit"));
                    }
                    out.extend_from_slice(&chunk.copy_to_bytes(n));
                }
                let (parts, ()) = resp.into_parts();
                Ok(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body: Bytes::from(out),
                })
            }
        }
    }

    /// Sends `req` on HTTP/1.1 or HTTP/2 and returns once it is on its way, with the
    /// answer's head still to come: the caller may keep feeding a streamed body (see
    /// [`stream_request`](crate::stream_request)) before awaiting it. HTTP/3 streams are
    /// opened through [`Conn::H3`]'s `send`.
    pub async fn start(&self, req: Request<ReqBody>) -> Result<ResponseFuture, ClientError> {
        match self {
            Conn::H1(s) => {
                let mut s = s.lock().await;
                s.ready().await.at(Phase::Send)?;
                let fut = s.send_request(req);
                Ok(Box::pin(async move { fut.await.at(Phase::Send) }))
            }
            Conn::H2(s) => {
                let fut = s.clone().send_request(req);
                Ok(Box::pin(async move { fut.await.at(Phase::Send) }))
            }
            Conn::H3 { .. } => Err(ClientError::new(
                Phase::Send,
                "a streamed request over HTTP/3 goes through Conn::H3's sender",
            )),
            Conn::LeanH2(_) | Conn::LeanH3(_) => Err(ClientError::new(
                Phase::Send,
                "the lean clients send whole requests only",
            )),
        }
    }
}

/// The bearer header's value, empty when the target has no key.
fn bearer(t: &Target) -> String {
    if t.api_key.is_empty() {
        String::new()
    } else {
        format!("Bearer {}", t.api_key)
    }
}

/// A POST's header fields: the content type, and the bearer key if there is one (the
/// fields and how many of them to send).
fn post_headers<'a>(content_type: &'a str, auth: &'a str) -> ([(&'a str, &'a str); 2], usize) {
    let h = [("content-type", content_type), ("authorization", auth)];
    (h, if auth.is_empty() { 1 } else { 2 })
}

/// A whole answer within the target's timeout.
async fn in_time(
    t: &Target,
    answer: impl Future<Output = Result<Answer, ClientError>>,
) -> Result<Answer, ClientError> {
    tokio::time::timeout(t.timeout, answer)
        .await
        .map_err(|_| ClientError::new(Phase::Timeout, "no whole answer in time"))?
}

async fn handshake<I>(protocol: Protocol, io: TokioIo<I>) -> Result<Conn, ClientError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if protocol == Protocol::H1 {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .at(Phase::Connect)?;
        tokio::spawn(conn);
        Ok(Conn::H1(Arc::new(tokio::sync::Mutex::new(send))))
    } else {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .at(Phase::Connect)?;
        tokio::spawn(conn);
        Ok(Conn::H2(send))
    }
}

/// Reads an HTTP/1.1 or HTTP/2 answer to its end.
/// The longest answer body read (the offline bundle of a province's lists is tens of
/// megabytes at most): a server that sends more gets an error, not the memory.
pub const MAX_ANSWER: usize = 256 << 20;

pub(crate) async fn read(resp: Response<Incoming>) -> Result<Answer, ClientError> {
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| ClientError::new(Phase::Body, e))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
