//! The one request handler. Every protocol (HTTP/1.1 and HTTP/2 from hyper, HTTP/3 from
//! h3) adapts its request to `http::Request<B>` and calls [`handle`]; this module routes,
//! authenticates, bounds bodies and concurrency, calls the API, and records metrics.
//! There is no per-protocol copy of any of it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, ALT_SVC, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::mpsc;

use crate::api::{self, ApiError, CardRequest, VerifyRequest};
use crate::app::{App, BATCH_BODY_LIMIT, VERIFY_BODY_LIMIT};
use crate::callers::Caller;
use crate::metrics::{Proto, Route};

/// A request body of any protocol (hyper's `Incoming`, HTTP/3's `H3Body`).
pub trait ReqBody:
    Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
{
}

impl<B: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>> ReqBody for B {}

/// Every response body: a whole buffer, or a channel for the stream endpoint.
pub type RespBody = UnsyncBoxBody<Bytes, Infallible>;

/// What the listener knows about the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub proto: Proto,
    /// SHA-256 of the client certificate (DER), when one was presented and verified.
    pub client_cert: Option<[u8; 32]>,
    /// `Alt-Svc` to add to responses (TCP listeners with HTTP/3 beside them).
    pub alt_svc: Option<HeaderValue>,
}

/// A response body fed by a channel, for answers made while the request still arrives.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

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

fn full(body: impl Into<Bytes>) -> RespBody {
    Full::new(body.into()).boxed_unsync()
}

fn json(status: StatusCode, body: String) -> Response<RespBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The one place an error becomes a response.
pub fn error_response(e: ApiError) -> Response<RespBody> {
    let mut r = json(e.status(), e.json());
    if let Some(s) = e.retry_after() {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn route_of(path: &str) -> Route {
    match path {
        "/v1/verify" => Route::Verify,
        "/v1/verify/batch" => Route::Batch,
        "/v1/verify/stream" => Route::Stream,
        "/v1/verify/card" => Route::Card,
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        _ => Route::Other,
    }
}

/// Handles one request of any protocol.
pub async fn handle<B>(app: Arc<App>, conn: ConnInfo, req: Request<B>) -> Response<RespBody>
where
    B: ReqBody + Send + Unpin + 'static,
{
    let start = Instant::now();
    let route = route_of(req.uri().path());
    let version = req.version();
    let (mut resp, caller) = match dispatch(&app, &conn, route, req).await {
        Ok((r, c)) => (r, c),
        Err((e, c)) => (error_response(e), c),
    };
    if let Some(v) = &conn.alt_svc {
        resp.headers_mut().insert(ALT_SVC, v.clone());
    }
    let proto = match version {
        http::Version::HTTP_2 => Proto::H2,
        http::Version::HTTP_3 => Proto::H3,
        _ if conn.proto == Proto::H3 => Proto::H3,
        _ => Proto::H1,
    };
    app.metrics
        .request(proto, route, resp.status().as_u16(), start.elapsed());
    if let Some(c) = &caller {
        c.requests.increment(1);
    }
    resp
}

type Outcome = Result<(Response<RespBody>, Option<Arc<Caller>>), (ApiError, Option<Arc<Caller>>)>;

async fn dispatch<B>(app: &Arc<App>, conn: &ConnInfo, route: Route, req: Request<B>) -> Outcome
where
    B: ReqBody + Send + Unpin + 'static,
{
    match (
        route,
        req.method() == Method::GET,
        req.method() == Method::POST,
    ) {
        (Route::Health, true, _) => {
            return Ok((json(StatusCode::OK, api::readiness_json(app).1), None))
        }
        (Route::Ready, true, _) => {
            let (ready, body) = api::readiness_json(app);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok((json(status, body), None));
        }
        (Route::Other, _, _) => return Err((ApiError::NotFound, None)),
        (Route::Health | Route::Ready, false, _) | (_, _, false) => {
            return Err((ApiError::MethodNotAllowed, None))
        }
        _ => {}
    }
    // Over the concurrency limit: refuse at once rather than queue without bound.
    let Ok(permit) = app.in_flight.clone().try_acquire_owned() else {
        return Err((ApiError::Overloaded, None));
    };
    let caller = authenticate(app, conn, &req).ok_or((ApiError::Unauthorized, None))?;
    let c = Some(caller.clone());
    let result = match route {
        Route::Verify => verify(app, &caller, req).await,
        Route::Batch => batch(app, &caller, req).await,
        Route::Card => card(app, &caller, req).await,
        Route::Stream => {
            let (tx, rx) = mpsc::channel(64);
            let (app2, caller2) = (app.clone(), caller.clone());
            tokio::spawn(async move {
                // The permit lives as long as the stream does.
                let _permit = permit;
                api::stream::run(app2, caller2, req.into_body(), tx).await;
            });
            let mut r = Response::new(ChannelBody(rx).boxed_unsync());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            return Ok((r, c));
        }
        _ => Err(ApiError::NotFound),
    };
    match result {
        Ok(r) => Ok((r, c)),
        Err(e) => Err((e, c)),
    }
}

/// The caller named by a bearer key, or else by the client certificate.
fn authenticate<B>(app: &App, conn: &ConnInfo, req: &Request<B>) -> Option<Arc<Caller>> {
    if let Some(h) = req.headers().get(AUTHORIZATION) {
        let key = h.as_bytes().strip_prefix(b"Bearer ")?;
        return app.callers.by_api_key(key).cloned();
    }
    conn.client_cert
        .as_ref()
        .and_then(|h| app.callers.by_cert(h).cloned())
}

/// Reads a whole body of at most `limit` bytes (413 beyond).
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: ReqBody,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::BodyTooLarge),
        Err(_) => Err(ApiError::BadRequest("request body could not be read")),
    }
}

fn take_one(caller: &Caller) -> Result<(), ApiError> {
    caller.take(1).map_err(|r| ApiError::RateLimited {
        retry_after_s: r.retry_after_s,
    })
}

fn is_text_plain<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        })
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        _ => None,
    })
}

async fn verify<B>(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody,
{
    let text = is_text_plain(&req);
    let venue_param = query_param(req.uri().query(), "venue").map(str::to_owned);
    let body = read_body(req.into_body(), VERIFY_BODY_LIMIT).await?;
    let request = if text {
        let code =
            std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8"))?;
        let venue = venue_param.ok_or(ApiError::BadRequest("text/plain needs ?venue="))?;
        VerifyRequest {
            code: code.trim().into(),
            venue: venue.into(),
            gate: None,
        }
    } else {
        api::parse_json(&body)?
    };
    api::check_venue(app, caller, &request.venue)?;
    take_one(caller)?;
    // A code whose signature is cached (or that fails before the signature) is answered
    // at once; the others queue for batch verification.
    let d = match app
        .verifier
        .decide_if_cached(&request.code, &request.venue, app.now())?
    {
        Some(d) => {
            app.metrics.decision(d.holder.reason);
            d
        }
        None => {
            let (code, venue) = (request.code.into_owned(), request.venue.into_owned());
            crate::batcher::Batcher::decide(app, code, venue)
                .await
                .ok_or(ApiError::Unavailable("verification was interrupted"))??
        }
    };
    Ok(json(StatusCode::OK, api::decision_json(&d, app)))
}

async fn batch<B>(
    app: &App,
    caller: &Caller,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody,
{
    let body = read_body(req.into_body(), BATCH_BODY_LIMIT).await?;
    Ok(json(
        StatusCode::OK,
        api::batch::answer(app, caller, &body)?,
    ))
}

async fn card<B>(
    app: &App,
    caller: &Caller,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody,
{
    let body = read_body(req.into_body(), VERIFY_BODY_LIMIT).await?;
    let request: CardRequest<'_> = api::parse_json(&body)?;
    // api.md's order: unknown venue, unknown card kind, then scope.
    api::known_venue(app, &request.venue)?;
    if gateway_core::pseudonym::CardKind::from_name(&request.card_kind).is_none() {
        return Err(ApiError::UnknownCardKind);
    }
    api::in_scope(caller, &request.venue)?;
    take_one(caller)?;
    let d = api::decide_card(app, &request)?;
    Ok(json(StatusCode::OK, api::decision_json(&d, app)))
}
