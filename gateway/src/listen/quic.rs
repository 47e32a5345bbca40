//! HTTP/3: quinn on UDP, h3 on top, each request adapted to `http::Request<H3Body>` and
//! answered by [`crate::service::handle`], the same handler as HTTP/1.1 and HTTP/2.
//!
//! Bounded as the TCP listeners are (`api.md` "Limits"): connections capped in total and
//! per client address (beyond them an Initial is refused at once); a Retry asks clients
//! to prove their address once more handshakes than `--quic-retry-above` are in
//! progress; the handshake has `--handshake-timeout`; QUIC's own idle timeout and the
//! same watchdog as TCP (first request, idle, request); request heads bounded by
//! `max_field_section_size` and by the frame scanner of [`super::h3guard`], which also
//! bounds frames of unknown type; unidirectional streams limited to what h3 needs.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::app::App;
use crate::callers::cert_hash;
use crate::limits::{EdgeLimits, RetryPolicy};
use crate::listen::guard::{Activity, ConnCaps, ConnTimeouts, Expired};
use crate::listen::h3guard::Guarded;
use crate::logs::Throttle;
use crate::metrics::{Phase, Proto, Transport};
use crate::service::{handle, ConnInfo};

/// Application error code sent when the gateway closes QUIC connections on shutdown
/// (H3_NO_ERROR: a graceful close).
pub const CLOSE_CODE: u32 = 0x100;

type RecvStream = h3::server::RequestStream<crate::listen::h3guard::GuardRecv, Bytes>;

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
    limits: &EdgeLimits,
) -> Result<quinn::ServerConfig, String> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.max_streams_per_conn.into());
    // h3 needs the client's control stream and at most its two QPACK streams.
    transport.max_concurrent_uni_streams(3u32.into());
    // What one connection can make the gateway hold before anything is read (api.md
    // revision 4, transport bounds): quinn's defaults are 1.25 MB a stream and no bound
    // per connection, so one client could park out-of-order data on every stream.
    let varint = |v: u64| quinn::VarInt::from_u64(v).map_err(|e| e.to_string());
    transport.stream_receive_window(varint(limits.quic_stream_window)?);
    transport.receive_window(varint(limits.quic_conn_window)?);
    transport.send_window(limits.quic_send_window);
    let idle = quinn::IdleTimeout::try_from(limits.idle_timeout).map_err(|e| e.to_string())?;
    transport.max_idle_timeout(Some(idle));
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

static REFUSED: Throttle = Throttle::new();

/// Handshakes under way, for the Retry threshold.
struct Handshakes(AtomicUsize);

/// One handshake under way; counted from accept until it ends either way.
struct Handshaking(Arc<Handshakes>);

impl Handshaking {
    fn start(h: &Arc<Handshakes>) -> Handshaking {
        h.0.fetch_add(1, Ordering::Relaxed);
        Handshaking(h.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    endpoint: quinn::Endpoint,
    app: Arc<App>,
    caps: Arc<ConnCaps>,
    mut stop: watch::Receiver<bool>,
) {
    let handshakes = Arc::new(Handshakes(AtomicUsize::new(0)));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let ip = incoming.remote_address().ip();
        let permit = match caps.try_open(ip) {
            Ok(p) => p,
            Err(why) => {
                app.metrics.refused(Transport::Quic, why.label());
                crate::warn_throttled!(
                    REFUSED,
                    reason = why.label(),
                    transport = "quic",
                    "connection refused: over the connection caps"
                );
                incoming.refuse();
                continue;
            }
        };
        let must_validate = match app.limits.quic_retry {
            RetryPolicy::Always => true,
            RetryPolicy::Above(n) => handshakes.0.load(Ordering::Relaxed) >= n,
        };
        if must_validate && !incoming.remote_address_validated() && incoming.may_retry() {
            app.metrics.quic_retries.increment(1);
            let _ = incoming.retry();
            continue;
        }
        app.metrics.connections(Transport::Quic, caps.open());
        let counted = Handshaking::start(&handshakes);
        let (app, stop, caps) = (app.clone(), stop.clone(), caps.clone());
        tokio::spawn(async move {
            let conn = {
                let _counted = counted;
                let Ok(connecting) = incoming.accept() else {
                    return;
                };
                match tokio::time::timeout(app.limits.handshake_timeout, connecting).await {
                    Ok(Ok(c)) => Some(c),
                    Ok(Err(_)) => None,
                    Err(_) => {
                        app.metrics.timeout(Phase::Handshake);
                        None
                    }
                }
            };
            if let Some(conn) = conn {
                let client_cert = conn
                    .peer_identity()
                    .and_then(|id| {
                        id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                            .ok()
                    })
                    .and_then(|certs| certs.first().map(|c| cert_hash(c)));
                serve_connection(conn, app.clone(), client_cert, stop).await;
            }
            drop(permit);
            app.metrics.connections(Transport::Quic, caps.open());
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
    let limits = app.limits.clone();
    let guarded = Guarded::new(conn, limits.max_head_bytes);
    let built = tokio::time::timeout(
        limits.first_request_timeout,
        h3::server::builder()
            .max_field_section_size(limits.max_head_bytes as u64)
            .build::<_, Bytes>(guarded),
    )
    .await;
    let Ok(Ok(mut h3conn)) = built else {
        quic.close(CLOSE_CODE.into(), b"");
        return;
    };
    let info = ConnInfo {
        proto: Proto::H3,
        client_cert,
        alt_svc: None,
    };
    let activity = Activity::new();
    let timeouts = ConnTimeouts {
        first_request: limits.first_request_timeout,
        idle: limits.idle_timeout,
        request: limits.request_timeout,
    };
    // One watchdog for the connection's life: made again for every request it would
    // arm and cancel a timer each time.
    let watchdog = activity.expired(timeouts);
    tokio::pin!(watchdog);
    loop {
        let resolver = tokio::select! {
            r = h3conn.accept() => match r {
                Ok(Some(r)) => r,
                _ => return,
            },
            why = &mut watchdog => {
                app.metrics.timeout(match why {
                    Expired::FirstRequest => Phase::FirstRequest,
                    Expired::Idle => Phase::Idle,
                    Expired::Request => Phase::Request,
                });
                quic.close(CLOSE_CODE.into(), b"timed out");
                return;
            }
            _ = stop.changed() => {
                // Refuse new requests (GOAWAY); requests in flight finish on their own
                // streams; the endpoint then closes the connection (`serve.rs`).
                let _ = h3conn.shutdown(0).await;
                quic.closed().await;
                return;
            }
        };
        // The whole request's future in one box: the task then holds a pointer, so
        // spawning it and storing its end copy 8 bytes, not the future (measured under
        // callgrind, warm HTTP/3: 92,000 → 86,900 instructions per request; unboxed,
        // memmove was 10 % of a warm profile, most of it in spawning and finishing
        // these tasks).
        tokio::spawn(Box::pin(request(
            app.clone(),
            info.clone(),
            activity.clone(),
            resolver,
        )));
    }
}

type Resolver = h3::server::RequestResolver<Guarded, Bytes>;

/// One request: its head (bounded by `--header-timeout`), the handler, the answer.
async fn request(app: Arc<App>, info: ConnInfo, activity: Arc<Activity>, resolver: Resolver) {
    let head = tokio::time::timeout(app.limits.header_timeout, resolver.resolve_request());
    let (req, stream) = match head.await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return,
        Err(_) => {
            app.metrics.timeout(Phase::Header);
            return;
        }
    };
    let in_flight = activity.begin();
    let (send, recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let req = http::Request::from_parts(parts, H3Body(recv));
    let resp = handle(app.clone(), info, req, Some(in_flight)).await;
    respond(send, resp).await;
}

type SendStream = h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// Sends an answer: the head, then each frame of the body (which holds the request's
/// shares until it is dropped here).
async fn respond(mut send: SendStream, resp: http::Response<crate::service::RespBody>) {
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
}
