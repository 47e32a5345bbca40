//! `POST /v1/verify/stream`: newline-delimited requests in, one decision line out for
//! each, in order, while the request body is still arriving. A line over 8,192 bytes gets
//! a `body_too_large` error object (the rest of it is skipped); any other bad line an
//! error object as in a batch; the stream goes on.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{check_venue, decide, parse_json, write_decision, ApiError, VerifyRequest};
use crate::app::{App, STREAM_LINE_LIMIT};
use crate::callers::Caller;

/// Answers one line (without its newline).
fn answer_line(app: &App, caller: &Caller, line: &[u8]) -> String {
    let result = parse_json::<VerifyRequest<'_>>(line).and_then(|req| {
        check_venue(app, caller, &req.venue)?;
        caller.take(1).map_err(|r| ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        })?;
        decide(app, &req)
    });
    let mut out = String::with_capacity(180);
    match result {
        Ok(d) => write_decision(&mut out, &d, app),
        Err(e) => out.push_str(&e.json()),
    }
    out.push('\n');
    out
}

/// Splits the body into lines and sends each answer down `tx` as soon as it is made.
/// Ends when the body ends (a last line without a newline is answered too), when the
/// body fails, or when the client stops reading.
pub async fn run<B>(app: Arc<App>, caller: Arc<Caller>, mut body: B, tx: mpsc::Sender<Bytes>)
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    // Set while skipping the rest of an over-long line.
    let mut skipping = false;
    loop {
        let chunk = match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Some(Err(_)) => return,
            None => break,
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(nl + 1);
            if skipping {
                skipping = false;
                continue;
            }
            let line = trim_line(&line[..nl]);
            if line.is_empty() {
                continue;
            }
            let out = if line.len() > STREAM_LINE_LIMIT {
                ApiError::BodyTooLarge.json() + "\n"
            } else {
                answer_line(&app, &caller, line)
            };
            if tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
        }
        if buf.len() > STREAM_LINE_LIMIT && !skipping {
            // Over-long and still no newline: answer now, drop what we have, skip the rest.
            buf.clear();
            skipping = true;
            if tx
                .send(Bytes::from(ApiError::BodyTooLarge.json() + "\n"))
                .await
                .is_err()
            {
                return;
            }
        } else if skipping {
            buf.clear();
        }
    }
    let line = trim_line(&buf);
    if !skipping && !line.is_empty() {
        let out = if line.len() > STREAM_LINE_LIMIT {
            ApiError::BodyTooLarge.json() + "\n"
        } else {
            answer_line(&app, &caller, line)
        };
        let _ = tx.send(Bytes::from(out)).await;
    }
}

/// Drops a trailing carriage return (CRLF line ends).
fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
