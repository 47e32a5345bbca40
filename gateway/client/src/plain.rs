//! One plaintext HTTP/1.1 GET: the admin port's probes, status and metrics.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::answer::Answer;
use crate::conn::{full, read, ReqBody};
use crate::error::{At, ClientError, Phase};

/// GETs `path` from a plaintext HTTP/1.1 port on a fresh connection.
pub async fn get_plain(addr: SocketAddr, path: &str) -> Result<Answer, ClientError> {
    let tcp = TcpStream::connect(addr).await.at(Phase::Connect)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(tcp))
        .await
        .at(Phase::Connect)?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(full(Bytes::new()))
        .at(Phase::Send)?;
    let resp = send.send_request(req).await.at(Phase::Send)?;
    read(resp).await
}
