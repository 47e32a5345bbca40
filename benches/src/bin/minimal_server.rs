//! The baseline for the HTTP benchmarks: the smallest hyper 1.x server with the same TLS
//! stack as the gateway (rustls + ring, ALPN h2 and http/1.1, hyper-util's auto
//! builder), answering every request with a fixed JSON body after reading the request
//! body. `minimal_server CERT KEY ADDR`; with `PLAIN_LISTEN=ADDR2` in the environment it
//! also serves plaintext HTTP/1.1 and h2c there (the gateway's `--plain-listen`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use gateway_benches::FIXED_ANSWER as BODY;

fn main() {
    let (certs, key, addr) = gateway_benches::server_args("minimal_server");
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("cert");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        if let Ok(plain) = std::env::var("PLAIN_LISTEN") {
            let listener = tokio::net::TcpListener::bind(&plain).await.expect("bind");
            println!("listening plaintext {plain}");
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(TokioIo::new(stream)));
                }
            });
        }
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening {addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                serve(TokioIo::new(tls)).await;
            });
        }
    });
}

/// One connection, HTTP/1.1 or HTTP/2 as the client speaks: the fixed answer.
async fn serve<I>(io: TokioIo<I>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
        let _ = req.into_body().collect().await;
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
        r.headers_mut()
            .insert("content-type", "application/json".parse().expect("header"));
        Ok::<_, Infallible>(r)
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}
