//! TCP listeners: TLS (HTTP/1.1 and HTTP/2 by ALPN) and plaintext (HTTP/1.1 and h2c),
//! both served by hyper-util's auto builder into [`crate::service::handle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::callers::cert_hash;
use crate::metrics::Proto;
use crate::service::{handle, ConnInfo};

/// Connection settings shared by the TCP listeners.
#[derive(Clone)]
pub struct TcpSettings {
    pub header_timeout: Duration,
    pub max_streams: u32,
    pub alt_svc: Option<HeaderValue>,
}

fn builder(s: &TcpSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.max_streams);
    b
}

/// Accepts until `stop` turns true; connections are watched by `graceful`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    settings: TcpSettings,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&settings));
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, builder, settings) =
            (app.clone(), tls.clone(), builder.clone(), settings.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = |conn: ConnInfo| {
                let app = app.clone();
                service_fn(move |req| {
                    let (app, conn) = (app.clone(), conn.clone());
                    async move { Ok::<_, Infallible>(handle(app, conn, req).await) }
                })
            };
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(settings.header_timeout, acceptor.accept(stream))
                            .await
                    else {
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
                    let c = builder
                        .serve_connection(TokioIo::new(tls), service(conn))
                        .into_owned();
                    let _ = watcher.watch(c).await;
                }
                None => {
                    // h2c by prior knowledge or HTTP/1.1: the auto builder reads the preface.
                    let conn = ConnInfo {
                        proto: Proto::H1,
                        client_cert: None,
                        alt_svc: None,
                    };
                    let c = builder
                        .serve_connection(TokioIo::new(stream), service(conn))
                        .into_owned();
                    let _ = watcher.watch(c).await;
                }
            }
        });
    }
}
