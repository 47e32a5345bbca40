//! Bodies: what comes in (a request body of any protocol, read whole within a size and
//! a time bound) and what goes out (a whole buffer, or a channel for the stream
//! endpoint). Knows nothing of routes or errors of the API: a body that cannot be read
//! says why with [`BodyError`], which the API maps to its answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::mpsc;

/// A request body of any protocol (hyper's `Incoming`, HTTP/3's `H3Body`).
pub trait ReqBody:
    Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
{
}

impl<B: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>> ReqBody for B {}

/// Every response body: a whole buffer, or a channel for the stream endpoint.
pub type RespBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response body fed by a channel, for answers made while the request still arrives.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A request body that must arrive whole before a deadline (`--body-timeout`); after
/// it, reading fails with [`BodyTimedOut`] (408 `request_timeout`). The clock starts the
/// first time the body is not there yet: a body that came with its head (most do) is
/// read without a timer.
pub struct Deadline<B> {
    body: B,
    within: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The body did not arrive in time.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body timed out")
    }
}

impl std::error::Error for BodyTimedOut {}

impl<B> Deadline<B> {
    pub fn new(body: B, within: Duration) -> Self {
        Deadline {
            body,
            within,
            sleep: None,
        }
    }
}

impl<B: ReqBody + Unpin> Body for Deadline<B> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        let within = self.within;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A whole response body.
pub fn full(body: impl Into<Bytes>) -> RespBody {
    Full::new(body.into()).boxed_unsync()
}

/// A JSON answer.
pub fn json(status: StatusCode, body: String) -> Response<RespBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over its size limit.
    TooLarge,
    /// Not whole within its time bound.
    TimedOut,
    /// The connection failed while it arrived.
    Unreadable,
}

/// Reads a whole body of at most `limit` bytes within `within`.
pub async fn read_whole<B>(body: B, limit: usize, within: Duration) -> Result<Bytes, BodyError>
where
    B: ReqBody + Unpin,
{
    match Limited::new(Deadline::new(body, within), limit)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) if e.is::<BodyTimedOut>() => Err(BodyError::TimedOut),
        Err(_) => Err(BodyError::Unreadable),
    }
}
