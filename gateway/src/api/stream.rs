//! `POST /v1/verify/stream`: newline-delimited requests in, one decision line out for
//! each, in order, while the request body is still arriving. A line over 8,192 bytes gets
//! a `body_too_large` error object (the rest of it is skipped); any other bad line an
//! error object as in a batch; the stream goes on.
//!
//! Bounded in time (`api.md` "Limits"): a stream that sends no line for
//! `--stream-idle-timeout`, or that has lived `--stream-max-duration`, is ended cleanly
//! after its last answer; a client that does not take its answers up within
//! `--request-timeout` has its stream dropped with what was buffered for it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::decide::{decide_one, take_rate};
use super::{check_venue, parse_json, write_decision, ApiError, VerifyRequest};
use crate::app::{App, STREAM_LINE_LIMIT};
use crate::callers::Caller;
use crate::metrics::Phase;

/// Answers one line (without its newline), on the one decision path of a single code.
async fn answer_line(app: &Arc<App>, caller: &Arc<Caller>, line: &[u8]) -> String {
    let result = match parse_json::<VerifyRequest<'_>>(line) {
        Ok(req) => match req.gate().and_then(|gate| {
            check_venue(app, caller, &req.venue)?;
            take_rate(caller, 1)?;
            Ok(gate)
        }) {
            Ok(gate) => decide_one(app, caller, &req.code, &req.venue, gate).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
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
    let limits = &app.limits;
    let end_of_life = Instant::now() + limits.stream_max_duration;
    // Sends one answer, unless the client has stopped taking them up.
    let send = |out: String| {
        let tx = tx.clone();
        let app = app.clone();
        async move {
            match tokio::time::timeout(app.limits.request_timeout, tx.send(Bytes::from(out))).await
            {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                Err(_) => {
                    app.metrics.timeout(Phase::SlowReader);
                    false
                }
            }
        }
    };
    let mut buf = BytesMut::new();
    // Set while skipping the rest of an over-long line.
    let mut skipping = false;
    loop {
        let deadline = (Instant::now() + limits.stream_idle_timeout).min(end_of_life);
        let chunk = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Ok(Some(Err(_))) => return,
            Ok(None) => break,
            Err(_) => {
                // Idle or over-long: end cleanly after the answers already sent.
                let phase = if Instant::now() >= end_of_life {
                    Phase::StreamDuration
                } else {
                    Phase::StreamIdle
                };
                app.metrics.timeout(phase);
                return;
            }
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
                answer_line(&app, &caller, line).await
            };
            if !send(out).await {
                return;
            }
        }
        if buf.len() > STREAM_LINE_LIMIT && !skipping {
            // Over-long and still no newline: answer now, drop what we have, skip the rest.
            buf.clear();
            skipping = true;
            if !send(ApiError::BodyTooLarge.json() + "\n").await {
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
            answer_line(&app, &caller, line).await
        };
        let _ = send(out).await;
    }
}

/// Drops a trailing carriage return (CRLF line ends).
fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
