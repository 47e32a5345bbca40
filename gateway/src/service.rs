//! The one request handler. Every protocol (HTTP/1.1 and HTTP/2 from hyper, HTTP/3 from
//! h3) adapts its request to `http::Request<B>` and calls [`handle`]; this module routes,
//! authenticates, bounds bodies and concurrency, calls the API, and records metrics.
//! There is no per-protocol copy of any of it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALT_SVC, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::api::{self, ApiError, CardRequest, VerifyRequest};
use crate::app::{App, BATCH_BODY_LIMIT, VERIFY_BODY_LIMIT};
use crate::callers::{Caller, Refusal};
use crate::listen::guard::InFlight;
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

/// A request body that must arrive whole before a deadline (`--body-timeout`); after
/// it, reading fails with [`BodyTimedOut`] (408 `request_timeout`).
pub struct Deadline<B> {
    body: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
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
            sleep: Box::pin(tokio::time::sleep(within)),
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
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A response body that holds what its request held (the caller's share, the
/// connection's record of the request) until the client has taken it up, so a reader
/// that does not read holds its own share and nobody else's.
struct Hold {
    inner: RespBody,
    _held: (Option<OwnedSemaphorePermit>, Option<InFlight>),
}

impl Body for Hold {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
        "/v1/auth" => Route::Auth,
        p if p.starts_with("/v1/auth/") => Route::Auth,
        _ => Route::Other,
    }
}

/// Handles one request of any protocol. `in_flight` is the connection's record of this
/// request, kept until the answer has been taken up (for a stream, it stops counting as
/// a short request).
pub async fn handle<B>(
    app: Arc<App>,
    conn: ConnInfo,
    req: Request<B>,
    in_flight: Option<InFlight>,
) -> Response<RespBody>
where
    B: ReqBody + Send + Unpin + 'static,
{
    let start = Instant::now();
    let route = route_of(req.uri().path());
    let version = req.version();
    let in_flight = match route {
        Route::Stream => in_flight.map(InFlight::into_stream),
        _ => in_flight,
    };
    let (mut resp, caller, share) = match dispatch(&app, &conn, route, req).await {
        Ok((r, c, p)) => (r, c, p),
        // The proxy endpoint answers in the form proxies understand.
        Err((e, c)) if route == Route::Auth => (api::auth::refused(e), c, None),
        Err((e, c)) => (error_response(e), c, None),
    };
    if share.is_some() || in_flight.is_some() {
        resp = resp.map(|inner| {
            Hold {
                inner,
                _held: (share, in_flight),
            }
            .boxed_unsync()
        });
    }
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

type Outcome = Result<
    (
        Response<RespBody>,
        Option<Arc<Caller>>,
        Option<OwnedSemaphorePermit>,
    ),
    (ApiError, Option<Arc<Caller>>),
>;

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
            return Ok((json(StatusCode::OK, api::readiness_json(app).1), None, None))
        }
        (Route::Ready, true, _) => {
            let (ready, body) = api::readiness_json(app);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok((json(status, body), None, None));
        }
        (Route::Other, _, _) => return Err((ApiError::NotFound, None)),
        // Proxies forward the door's own method.
        (Route::Auth, _, _) => {}
        (Route::Health | Route::Ready, false, _) | (_, _, false) => {
            return Err((ApiError::MethodNotAllowed, None))
        }
        _ => {}
    }
    let caller = authenticate(app, conn, &req).ok_or((ApiError::Unauthorized, None))?;
    let c = Some(caller.clone());
    let refuse = |why: Refusal| {
        caller.refused(why);
        Err((ApiError::Overloaded, c.clone()))
    };
    if route == Route::Stream {
        // Long-lived: counted in a pool of their own (the caller's share, then all
        // callers'), so streams cannot take the slots short verifications need.
        let Ok(mine) = caller.streams.clone().try_acquire_owned() else {
            return refuse(Refusal::Streams);
        };
        let Ok(all) = app.open_streams.clone().try_acquire_owned() else {
            return refuse(Refusal::Streams);
        };
        let (tx, rx) = mpsc::channel(64);
        let (app2, caller2) = (app.clone(), caller.clone());
        tokio::spawn(async move {
            // The permits live as long as the stream does.
            let _permits = (mine, all);
            api::stream::run(app2, caller2, req.into_body(), tx).await;
        });
        let mut r = Response::new(ChannelBody(rx).boxed_unsync());
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        return Ok((r, c, None));
    }
    // This caller's share first: a caller over it is refused alone.
    let Ok(share) = caller.in_flight.clone().try_acquire_owned() else {
        return refuse(Refusal::InFlight);
    };
    let result = match route {
        Route::Verify => verify(app, &caller, req).await,
        Route::Batch => batch(app, &caller, req).await,
        Route::Card => card(app, &caller, req).await,
        Route::Auth => auth(app, &caller, req).await,
        _ => Err(ApiError::NotFound),
    };
    match result {
        Ok(r) => Ok((r, c, Some(share))),
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

/// Reads a whole body of at most `limit` bytes (413 beyond) within `--body-timeout`
/// (408 after).
async fn read_body<B>(app: &App, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: ReqBody + Unpin,
{
    let body = Deadline::new(body, app.limits.body_timeout);
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::BodyTooLarge),
        Err(e) if e.is::<BodyTimedOut>() => {
            app.metrics.timeout(crate::metrics::Phase::Body);
            Err(ApiError::RequestTimeout)
        }
        Err(_) => Err(ApiError::BadRequest("request body could not be read")),
    }
}

/// A slot of the global in-flight limit, taken once the body is in (so a body that is
/// still arriving holds only its caller's share).
fn work_slot(app: &App) -> Result<OwnedSemaphorePermit, ApiError> {
    app.in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)
}

pub fn take_one(caller: &Caller) -> Result<(), ApiError> {
    caller.take(1).map_err(|r| {
        caller.refused(Refusal::Rate);
        ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        }
    })
}

/// The one decision path of a single code (`/v1/verify` and each line of
/// `/v1/verify/stream`), venue checked and rate taken: a code whose signature is cached
/// (or that fails before the signature) is answered at once; the others go to the
/// verification pool, unless the caller has spent its budget of failed signatures.
pub async fn decide_one(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    code: &str,
    venue: &str,
) -> Result<gateway_core::Decision, ApiError> {
    if let Some(d) = app.verifier.decide_if_cached(code, venue, app.now())? {
        app.metrics.decision(d.holder.reason);
        return Ok(d);
    }
    if let Some(r) = caller.bad_signatures_spent() {
        caller.refused(Refusal::BadSignatures);
        return Err(ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        });
    }
    match app.pool.decide(caller, code.into(), venue.into()).await {
        Ok(Some(answer)) => Ok(answer?),
        Ok(None) => Err(ApiError::Unavailable("verification was interrupted")),
        Err(crate::pool::QueueFull) => Err(ApiError::Overloaded),
    }
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
    caller: &Arc<Caller>,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody + Unpin,
{
    let text = is_text_plain(&req);
    let venue_param = query_param(req.uri().query(), "venue").map(str::to_owned);
    let body = read_body(app, req.into_body(), VERIFY_BODY_LIMIT).await?;
    let _slot = work_slot(app)?;
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
    let d = decide_one(app, caller, &request.code, &request.venue).await?;
    Ok(json(StatusCode::OK, api::decision_json(&d, app)))
}

/// `/v1/auth`: the decision of `/v1/verify` for a code and venue in request headers,
/// answered for a proxy (`api/auth.rs`). The request's body is never read.
async fn auth<B>(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError> {
    let (code, venue) = api::auth::code_and_venue(app, &req)?;
    drop(req);
    let _slot = work_slot(app)?;
    api::check_venue(app, caller, &venue)?;
    take_one(caller)?;
    let d = decide_one(app, caller, &code, &venue).await?;
    Ok(api::auth::decided(&d, app))
}

async fn batch<B>(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody + Unpin,
{
    let body = read_body(app, req.into_body(), BATCH_BODY_LIMIT).await?;
    let _slot = work_slot(app)?;
    Ok(json(
        StatusCode::OK,
        api::batch::answer(app, caller, &body).await?,
    ))
}

async fn card<B>(
    app: &App,
    caller: &Caller,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody + Unpin,
{
    let body = read_body(app, req.into_body(), VERIFY_BODY_LIMIT).await?;
    let _slot = work_slot(app)?;
    let request: CardRequest<'_> = api::parse_json(&body)?;
    // api.md's order: unknown venue, unknown card kind, then scope.
    api::known_venue(app, &request.venue)?;
    if gateway_core::pseudonym::CardKind::from_name(&request.card_kind).is_none() {
        return Err(ApiError::UnknownCardKind);
    }
    api::in_scope(caller, &request.venue)?;
    // Then the card permission (403), then both rates: the caller's, then its card rate.
    let cards = caller.cards().ok_or_else(|| {
        caller.refused(Refusal::Card);
        ApiError::ForbiddenCard
    })?;
    take_one(caller)?;
    cards.take(&request.number).map_err(|r| {
        caller.refused(Refusal::CardRate);
        ApiError::RateLimited {
            retry_after_s: r.retry_after_s,
        }
    })?;
    let d = api::decide_card(app, &request)?;
    Ok(json(StatusCode::OK, api::decision_json(&d, app)))
}
