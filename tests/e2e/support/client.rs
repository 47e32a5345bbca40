//! The suite's view of `gateway-client` (the client `loadtest` uses too): the same
//! connections over HTTP/1.1, HTTP/2 and HTTP/3, with failures turned into panics (a
//! test's failure report) and answers whose JSON is read directly.

use std::net::SocketAddr;

use bytes::Bytes;
use gateway_client::{Conn, Target};
use http::{Method, Request};
use rustls::pki_types::CertificateDer;

pub use gateway_client::{full, Identity, Lines, Protocol, ReqBody, ResponseFuture};

/// The three protocols, in order.
pub const ALL: [Protocol; 3] = Protocol::ALL;

/// A response read to the end.
#[derive(Debug)]
pub struct Answer(pub gateway_client::Answer);

impl std::ops::Deref for Answer {
    type Target = gateway_client::Answer;
    fn deref(&self) -> &gateway_client::Answer {
        &self.0
    }
}

impl Answer {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        self.0
            .json()
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A client TLS configuration trusting `ca`, offering `alpn`, optionally with a client
/// certificate.
pub fn tls_config(
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    identity: Option<&Identity>,
) -> rustls::ClientConfig {
    gateway_client::tls_config(Some(ca), alpn, identity).expect("client TLS configuration")
}

/// A connection of one protocol to the gateway's TLS port, and where it goes.
pub struct Client {
    pub conn: Conn,
    pub target: Target,
}

impl Client {
    pub async fn connect(
        proto: Protocol,
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
    ) -> Client {
        Self::connect_as(proto, addr, ca, None).await
    }

    /// Connects presenting a client certificate when `identity` is given.
    pub async fn connect_as(
        proto: Protocol,
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        identity: Option<&Identity>,
    ) -> Client {
        let mut target = Target::tls(addr, proto, ca.clone());
        target.identity = identity.map(|(chain, key)| (chain.clone(), key.clone_key()));
        let conn = Conn::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} connection: {e}"));
        Client { conn, target }
    }

    /// Sends a request with a whole body and exactly these headers; reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let a = self
            .conn
            .request(&self.target, method, path, headers, body.into())
            .await
            .unwrap_or_else(|e| panic!("{:?} {path}: {e}", self.target.protocol));
        Answer(a)
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

    /// A newline-delimited `POST path` with `api_key`, its body open until the `Lines` is
    /// dropped, sent at once (HTTP/1.1 or HTTP/2): the answer's head to come.
    pub async fn open_stream(&self, path: &str, api_key: &str) -> (ResponseFuture, Lines) {
        let mut t = self.target.clone();
        t.api_key = api_key.to_owned();
        let (req, lines) = gateway_client::stream_request(&t, path).expect("stream request");
        (self.start(req).await, lines)
    }

    /// Sends `req` (HTTP/1.1 or HTTP/2); the answer's head to come.
    pub async fn start(&self, req: Request<ReqBody>) -> ResponseFuture {
        self.conn.start(req).await.expect("request sent")
    }

    /// The HTTP/3 connection's stream opener; panics on other protocols.
    pub fn h3(&self) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
        match &self.conn {
            Conn::H3 { send, .. } => send.clone(),
            _ => panic!("not an HTTP/3 connection"),
        }
    }
}

/// GET on a plaintext HTTP/1.1 port (admin), `None` if it cannot connect or the answer
/// breaks off.
pub async fn get_plain(addr: SocketAddr, path: &str) -> Option<Answer> {
    gateway_client::get_plain(addr, path).await.ok().map(Answer)
}
