//! `POST /v1/verify`: one code, as JSON (`{"code", "venue", "gate"}`) or as
//! `text/plain` with `?venue=`.

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Response, StatusCode};

use super::decide::{decide_one, take_rate};
use super::{check_venue, decision_json, parse_json, ApiError, VerifyRequest};
use crate::app::App;
use crate::body::{json, RespBody};
use crate::callers::Caller;

/// Answers a `/v1/verify` request whose body has been read.
pub async fn answer(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    head: &Parts,
    body: &[u8],
) -> Result<Response<RespBody>, ApiError> {
    let request = if is_text_plain(head) {
        let code =
            std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8"))?;
        let venue = query_param(head.uri.query(), "venue")
            .ok_or(ApiError::BadRequest("text/plain needs ?venue="))?;
        VerifyRequest {
            code: code.trim().into(),
            venue: venue.into(),
            gate: None,
        }
    } else {
        // A `?venue=` beside a JSON body is not used, but must still name a category.
        if let Some(v) = query_param(head.uri.query(), "venue") {
            super::known_venue(app, v)?;
        }
        parse_json(body)?
    };
    let gate = request.gate()?;
    check_venue(app, caller, &request.venue)?;
    take_rate(caller, 1)?;
    let d = decide_one(app, caller, &request.code, &request.venue, gate).await?;
    Ok(json(StatusCode::OK, decision_json(&d, app)))
}

fn is_text_plain(head: &Parts) -> bool {
    head.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        })
}

pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        _ => None,
    })
}
