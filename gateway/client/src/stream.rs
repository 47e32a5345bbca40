//! A POST whose body stays open, fed one line at a time (`/v1/verify/stream`).

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;

use crate::conn::ReqBody;
use crate::error::{At, ClientError, Phase};
use crate::target::Target;

/// The sending side of a request body that stays open until it is dropped.
pub struct Lines(tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::io::Error>>);

impl Lines {
    /// Sends `line` and a newline; false once the request is gone.
    pub async fn send(&self, line: impl std::fmt::Display) -> bool {
        self.0
            .send(Ok(http_body::Frame::data(Bytes::from(format!("{line}\n")))))
            .await
            .is_ok()
    }
}

/// A newline-delimited JSON `POST path` to `t` (`/v1/verify/stream`), with its bearer key,
/// whose body stays open until the [`Lines`] is dropped. Send it with
/// [`Conn::start`](crate::Conn::start).
pub fn stream_request(t: &Target, path: &str) -> Result<(Request<ReqBody>, Lines), ClientError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let body =
        http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
            .boxed_unsync();
    let req = Request::post(format!("{}://{}{path}", t.scheme(), t.server_name))
        .header("host", t.server_name.as_str())
        .header("authorization", format!("Bearer {}", t.api_key))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .at(Phase::Send)?;
    Ok((req, Lines(tx)))
}
