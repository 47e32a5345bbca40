//! A small HTTP/2 load generator for the cold benchmark, which h2load cannot do (it sends
//! one body for every request): `h2bench ADDR CA_PEM API_KEY CODES_FILE OFFSET CONNS
//! STREAMS SECONDS`. Every request carries the next code of the file from OFFSET on
//! (never one twice), or, if the file holds one code, that code every time (warm);
//! prints `rps p50 p99` (latencies in µs). Closed loop: each of
//! CONNS × STREAMS workers sends its next request when the last one is answered.
//! Sends to the given address only (the benchmark script gives 127.0.0.1).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, addr, ca, key, codes, offset, conns, streams, secs] = a.as_slice() else {
        eprintln!("usage: h2bench ADDR CA_PEM API_KEY CODES_FILE OFFSET CONNS STREAMS SECONDS");
        std::process::exit(2);
    };
    let codes: Arc<Vec<Bytes>> = Arc::new(
        std::fs::read_to_string(codes)
            .expect("codes")
            .lines()
            .map(|l| Bytes::from(l.to_owned()))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(offset.parse().expect("offset")));
    let (conns, streams): (usize, usize) = (
        conns.parse().expect("conns"),
        streams.parse().expect("streams"),
    );
    let secs: u64 = secs.parse().expect("seconds");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(ca).expect("ca").as_slice()) {
        roots.add(c.expect("pem")).expect("ca cert");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let auth = format!("Bearer {key}");
    let addr = addr.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let tcp = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let _ = tcp.set_nodelay(true);
            let tls = connector
                .connect(ServerName::try_from("localhost").expect("name"), tcp)
                .await
                .expect("tls");
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .expect("h2");
            tokio::spawn(conn);
            for _ in 0..streams {
                let (mut send, codes, next, stop, auth) = (
                    send.clone(),
                    codes.clone(),
                    next.clone(),
                    stop.clone(),
                    auth.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = if codes.len() == 1 {
                            0
                        } else {
                            next.fetch_add(1, Ordering::Relaxed)
                        };
                        let Some(code) = codes.get(i) else { break };
                        let req = hyper::Request::post("https://localhost/v1/verify?venue=bus")
                            .header("authorization", &auth)
                            .header("content-type", "text/plain")
                            .body(Full::new(code.clone()))
                            .expect("request");
                        let t = Instant::now();
                        let Ok(resp) = send.send_request(req).await else {
                            break;
                        };
                        let ok = resp.status() == 200;
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                    }
                    lat
                }));
            }
        }
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        let elapsed = start.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{:.0} {}us {}us",
            all.len() as f64 / elapsed,
            pct(0.5),
            pct(0.99)
        );
    });
}
