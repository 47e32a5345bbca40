//! TCP listeners: TLS (HTTP/1.1 and HTTP/2 by ALPN), plaintext (HTTP/1.1 and h2c), both
//! served by hyper-util's auto builder into [`crate::service::handle`], and the admin
//! port through the same connection driver.
//!
//! Every phase is bounded (`api.md` "Limits"): connections are capped in total and per
//! client address before anything is read; the TLS handshake has `--handshake-timeout`;
//! a watchdog closes a connection that sends no complete request head within
//! `--first-request-timeout` (protocol detection included, so a silent or half-preface
//! connection goes), that has nothing in flight for `--idle-timeout`, or whose request
//! (its answer included) makes no progress for `--request-timeout`; HTTP/1.1 heads are
//! bounded by `--header-timeout` and `--max-head-bytes`, HTTP/2 header lists by
//! `--max-head-bytes`, and quiet HTTP/2 connections are pinged. Accept errors (out of
//! descriptors) back off instead of spinning, and their warnings are throttled.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::callers::cert_hash;
use crate::limits::{EdgeLimits, CLOSE_GRACE};
use crate::listen::guard::{Activity, ConnCaps, ConnTimeouts, Expired, InFlight};
use crate::logs::Throttle;
use crate::metrics::{Metrics, Phase, Proto, Transport};
use crate::service::{handle, ConnInfo, RespBody};

/// Connection settings shared by the TCP listeners.
#[derive(Clone)]
pub struct TcpSettings {
    pub limits: EdgeLimits,
    pub alt_svc: Option<HeaderValue>,
}

fn builder(l: &EdgeLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(l.header_timeout)
        // hyper's floor for its read buffer is 8 KiB.
        .max_buf_size(l.max_head_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(l.max_streams_per_conn)
        .max_header_list_size(u32::try_from(l.max_head_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(l.h2_ping_interval)
        .keep_alive_timeout(l.h2_ping_interval)
        // Rapid reset: streams the client resets before we answer are capped.
        .max_pending_accept_reset_streams(32)
        .max_local_error_reset_streams(256);
    b
}

/// How long an accept loop waits after an error (out of descriptors, buffers): long
/// enough not to spin, short enough to serve again soon after the flood leaves.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

static ACCEPT_FAILED: Throttle = Throttle::new();
static REFUSED: Throttle = Throttle::new();

/// Accepts connections until `stop` turns true, each capped by `caps` and given to
/// `serve_one` in a task of its own.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    caps: Arc<ConnCaps>,
    metrics: &Metrics,
    transport: Transport,
    mut stop: watch::Receiver<bool>,
    serve_one: F,
) where
    F: Fn(TcpStream, SocketAddr, crate::listen::guard::ConnPermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    metrics.refused(transport, "accept_error");
                    crate::warn_throttled!(ACCEPT_FAILED, error = %e, transport = transport.label(), "accept failed; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let permit = match caps.try_open(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                // Refused at once: closing the socket is all it costs.
                metrics.refused(transport, why.label());
                crate::warn_throttled!(
                    REFUSED,
                    reason = why.label(),
                    transport = transport.label(),
                    "connection refused: over the connection caps"
                );
                drop(stream);
                continue;
            }
        };
        metrics.connections(transport, caps.open());
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_one(stream, peer, permit));
    }
}

/// Serves the public TCP listener (TLS when `tls` is given, else plaintext h1/h2c).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    settings: TcpSettings,
    caps: Arc<ConnCaps>,
    stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&settings.limits));
    let metrics_app = app.clone();
    let stop2 = stop.clone();
    accept_loop(
        listener,
        caps.clone(),
        &metrics_app.metrics,
        Transport::Tcp,
        stop,
        move |stream, _peer, permit| {
            let (app, tls, builder, settings, caps, stop) = (
                app.clone(),
                tls.clone(),
                builder.clone(),
                settings.clone(),
                caps.clone(),
                stop2.clone(),
            );
            async move {
                let limits = settings.limits.clone();
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                                .await
                        else {
                            app.metrics.timeout(Phase::Handshake);
                            drop(permit);
                            app.metrics.connections(Transport::Tcp, caps.open());
                            return;
                        };
                        let (_, session) = tls.get_ref();
                        let proto = if session.alpn_protocol() == Some(b"h2") {
                            Proto::H2
                        } else {
                            Proto::H1
                        };
                        let client_cert = session
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| cert_hash(c));
                        let conn = ConnInfo {
                            proto,
                            client_cert,
                            alt_svc: settings.alt_svc.clone(),
                        };
                        drive(
                            &builder,
                            tls,
                            public_service(app.clone(), conn),
                            &app,
                            &limits,
                            stop,
                        )
                        .await;
                    }
                    None => {
                        // h2c by prior knowledge or HTTP/1.1: the auto builder reads the preface.
                        let conn = ConnInfo {
                            proto: Proto::H1,
                            client_cert: None,
                            alt_svc: None,
                        };
                        drive(
                            &builder,
                            stream,
                            public_service(app.clone(), conn),
                            &app,
                            &limits,
                            stop,
                        )
                        .await;
                    }
                }
                drop(permit);
                app.metrics.connections(Transport::Tcp, caps.open());
            }
        },
    )
    .await;
}

/// A connection's service: each request is recorded on the connection's [`Activity`]
/// and answered by the one handler.
type Service = Box<
    dyn Fn(
            Request<Incoming>,
            &Arc<Activity>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<RespBody>> + Send>>
        + Send
        + Sync,
>;

fn public_service(app: Arc<App>, conn: ConnInfo) -> Service {
    Box::new(move |req, activity| {
        let in_flight: InFlight = activity.begin();
        let (app, conn) = (app.clone(), conn.clone());
        Box::pin(async move { handle(app, conn, req, Some(in_flight)).await })
    })
}

/// Serves one connection with `service` until it ends, the watchdog closes it, or the
/// gateway stops (then it is shut down gracefully, and dropped after [`CLOSE_GRACE`]
/// past the drain if it still has not finished).
pub async fn drive<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: Service,
    app: &App,
    limits: &EdgeLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let service = Arc::new(service);
    let a = activity.clone();
    let svc = service_fn(move |req| {
        let fut = service(req, &a);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let timeouts = ConnTimeouts {
        first_request: limits.first_request_timeout,
        idle: limits.idle_timeout,
        request: limits.request_timeout,
    };
    let grace = tokio::select! {
        _ = conn.as_mut() => return,
        why = activity.expired(timeouts) => {
            app.metrics.timeout(match why {
                Expired::FirstRequest => Phase::FirstRequest,
                Expired::Idle => Phase::Idle,
                Expired::Request => Phase::Request,
            });
            CLOSE_GRACE
        }
        _ = stop.changed() => limits.request_timeout.max(CLOSE_GRACE),
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn).await;
}

/// The admin port's service.
pub fn admin_service(app: Arc<App>) -> Service {
    Box::new(move |req, activity| {
        let in_flight = activity.begin();
        let resp = crate::admin::route(&app, &req);
        Box::pin(async move {
            let _in_flight = in_flight;
            resp
        })
    })
}

/// Serves the admin port: plain HTTP/1.1, the same caps and timeouts as the public port.
pub async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    caps: Arc<ConnCaps>,
    stop: watch::Receiver<bool>,
) {
    let limits = app.limits.clone();
    let mut b = auto::Builder::new(TokioExecutor::new()).http1_only();
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    let builder = Arc::new(b);
    let metrics_app = app.clone();
    let stop2 = stop.clone();
    accept_loop(
        listener,
        caps.clone(),
        &metrics_app.metrics,
        Transport::Admin,
        stop,
        move |stream, _peer, permit| {
            let (app, builder, caps, stop, limits) = (
                app.clone(),
                builder.clone(),
                caps.clone(),
                stop2.clone(),
                limits.clone(),
            );
            async move {
                drive(
                    &builder,
                    stream,
                    admin_service(app.clone()),
                    &app,
                    &limits,
                    stop,
                )
                .await;
                drop(permit);
                app.metrics.connections(Transport::Admin, caps.open());
            }
        },
    )
    .await;
}
