//! The HTTP/3 baseline: the smallest quinn + h3 server with the gateway's QUIC stack
//! (quinn with rustls + ring, ALPN h3), answering every request with a fixed JSON body
//! after reading the request body. `minimal_h3 CERT KEY ADDR` (UDP).

use std::sync::Arc;

use bytes::{Buf, Bytes};

use gateway_benches::FIXED_ANSWER as BODY;

fn main() {
    let (certs, key, addr) = gateway_benches::server_args("minimal_h3");
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("cert");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = u32::MAX;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // The gateway's UDP buffers (4 MiB each way), so that neither side of a
        // comparison drops the bursts the other keeps.
        let socket = gateway_client::udp_socket(addr.parse().expect("addr")).expect("bind udp");
        let runtime = quinn::default_runtime().expect("runtime");
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            socket,
            runtime,
        )
        .expect("endpoint");
        println!("listening {addr}");
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok(mut h3c) =
                    h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
                else {
                    return;
                };
                while let Ok(Some(resolver)) = h3c.accept().await {
                    tokio::spawn(async move {
                        let Ok((_req, mut stream)) = resolver.resolve_request().await else {
                            return;
                        };
                        while let Ok(Some(mut chunk)) = stream.recv_data().await {
                            chunk.advance(chunk.remaining());
                        }
                        let resp = http::Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(())
                            .expect("response");
                        if stream.send_response(resp).await.is_ok() {
                            let _ = stream.send_data(Bytes::from_static(BODY.as_bytes())).await;
                            let _ = stream.finish().await;
                        }
                    });
                }
            });
        }
    });
}
