//! HTTP/3: quinn on UDP, h3 on top, each request adapted to `http::Request<H3Body>` and
//! answered by [`crate::service::handle`], the same handler as HTTP/1.1 and HTTP/2.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::app::App;
use crate::callers::cert_hash;
use crate::metrics::Proto;
use crate::service::{handle, ConnInfo};

/// Application error code sent when the gateway closes QUIC connections on shutdown
/// (H3_NO_ERROR: a graceful close).
pub const CLOSE_CODE: u32 = 0x100;

type RecvStream = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// The request body of an HTTP/3 request.
pub struct H3Body(RecvStream);

impl Body for H3Body {
    type Data = Bytes;
    type Error = h3::error::StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.poll_recv_data(cx) {
            Poll::Ready(Ok(Some(mut buf))) => {
                let n = buf.remaining();
                Poll::Ready(Some(Ok(Frame::data(buf.copy_to_bytes(n)))))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The QUIC endpoint's server configuration from the TLS one (ALPN h3).
pub fn server_config(
    tls: Arc<rustls::ServerConfig>,
    max_streams: u32,
) -> Result<quinn::ServerConfig, String> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(max_streams.into());
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// Accepts connections until `stop` turns true.
pub async fn serve(endpoint: quinn::Endpoint, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let client_cert = conn
                .peer_identity()
                .and_then(|id| {
                    id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                        .ok()
                })
                .and_then(|certs| certs.first().map(|c| cert_hash(c)));
            serve_connection(conn, app, client_cert, stop).await;
        });
    }
}

async fn serve_connection(
    conn: quinn::Connection,
    app: Arc<App>,
    client_cert: Option<[u8; 32]>,
    mut stop: watch::Receiver<bool>,
) {
    // Kept so that, on shutdown, this connection stays open until the endpoint closes it
    // with the gateway's application code (dropping it would close it with code 0).
    let quic = conn.clone();
    let Ok(mut h3conn) = h3::server::builder()
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await
    else {
        return;
    };
    let info = ConnInfo {
        proto: Proto::H3,
        client_cert,
        alt_svc: None,
    };
    loop {
        let resolver = tokio::select! {
            r = h3conn.accept() => match r {
                Ok(Some(r)) => r,
                _ => return,
            },
            _ = stop.changed() => {
                // Refuse new requests (GOAWAY); requests in flight finish on their own
                // streams; the endpoint then closes the connection (`serve.rs`).
                let _ = h3conn.shutdown(0).await;
                quic.closed().await;
                return;
            }
        };
        let (app, info) = (app.clone(), info.clone());
        tokio::spawn(async move {
            let Ok((req, stream)) = resolver.resolve_request().await else {
                return;
            };
            let (mut send, recv) = stream.split();
            let (parts, ()) = req.into_parts();
            let req = http::Request::from_parts(parts, H3Body(recv));
            let resp = handle(app, info, req).await;
            let (parts, mut body) = resp.into_parts();
            if send
                .send_response(http::Response::from_parts(parts, ()))
                .await
                .is_err()
            {
                return;
            }
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if send.send_data(data).await.is_err() {
                        return;
                    }
                }
            }
            let _ = send.finish().await;
        });
    }
}
