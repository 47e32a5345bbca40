//! The one request handler. Every protocol (HTTP/1.1 and HTTP/2 from hyper, HTTP/3 from
//! h3) adapts its request to `http::Request<B>` and calls [`handle`]; this module only
//! routes, authenticates, applies the limits (shares, bodies, slots) and records the
//! request metrics; every endpoint's body is in `api/`. There is no per-protocol copy of
//! any of it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, ALT_SVC, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::api::{self, ApiError};
use crate::app::{App, BATCH_BODY_LIMIT, VERIFY_BODY_LIMIT};
use crate::body::{json, read_whole, BodyError, ChannelBody};
pub use crate::body::{ReqBody, RespBody};
use crate::callers::{Caller, Refusal};
use crate::listen::guard::InFlight;
use crate::metrics::{Proto, Route};
use crate::slots::Slot;

/// What the listener knows about the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub proto: Proto,
    /// SHA-256 of the client certificate (DER), when one was presented and verified.
    pub client_cert: Option<[u8; 32]>,
    /// `Alt-Svc` to add to responses (TCP listeners with HTTP/3 beside them).
    pub alt_svc: Option<HeaderValue>,
}

/// A response body that holds what its request held (the caller's share, the
/// connection's record of the request) until the client has taken it up, so a reader
/// that does not read holds its own share and nobody else's.
struct Hold {
    inner: RespBody,
    _held: (Option<Slot>, Option<InFlight>),
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
        "/v1/offline/bundle" => Route::Offline,
        p if p.starts_with("/v1/status-lists/") => Route::Offline,
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
        Err((e, c)) => (e.response(), c, None),
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
    (Response<RespBody>, Option<Arc<Caller>>, Option<Slot>),
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
            return Ok((json(StatusCode::OK, api::readiness_json(app).1), None, None));
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
        (Route::Health | Route::Ready | Route::Offline, false, _) => {
            return Err((ApiError::MethodNotAllowed("GET"), None))
        }
        (Route::Offline, true, _) => {}
        (_, _, false) => return Err((ApiError::MethodNotAllowed("POST"), None)),
        _ => {}
    }
    let caller = authenticate(app, conn, &req).ok_or((ApiError::Unauthorized, None))?;
    let c = Some(caller.clone());
    if app.feed.restoring() {
        // No request sees half a snapshot (feed.md revision 4); at boot only.
        return Err((
            ApiError::Unavailable("state being restored from a snapshot"),
            c,
        ));
    }
    let refuse = |why: Refusal| {
        caller.refused(why);
        Err((ApiError::Overloaded, c.clone()))
    };
    if route == Route::Stream {
        // Long-lived: counted in a pool of their own (the caller's share, then all
        // callers'), so streams cannot take the slots short verifications need.
        let Some(mine) = caller.streams.try_take() else {
            return refuse(Refusal::Streams);
        };
        let Some(all) = app.open_streams.try_take() else {
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
    let Some(share) = caller.in_flight.try_take() else {
        return refuse(Refusal::InFlight);
    };
    match endpoint(app, &caller, route, req).await {
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

/// An endpoint's answer. The limits apply here, the same for every endpoint: the body
/// is read whole within its size limit and `--body-timeout` (the proxy endpoint's is
/// never read), then a slot of the global in-flight limit is taken (so a body still
/// arriving holds only its caller's share); the endpoint itself is in `api/`.
async fn endpoint<B>(
    app: &Arc<App>,
    caller: &Arc<Caller>,
    route: Route,
    req: Request<B>,
) -> Result<Response<RespBody>, ApiError>
where
    B: ReqBody + Send + Unpin + 'static,
{
    let (head, body) = req.into_parts();
    let body = match route {
        Route::Auth | Route::Offline => Bytes::new(),
        Route::Batch => read_body(app, body, BATCH_BODY_LIMIT).await?,
        _ => read_body(app, body, VERIFY_BODY_LIMIT).await?,
    };
    let _slot = app.in_flight.try_take().ok_or(ApiError::Overloaded)?;
    match route {
        Route::Verify => api::verify::answer(app, caller, &head, &body).await,
        Route::Batch => api::batch::answer(app, caller, &body).await,
        Route::Card => api::card::answer(app, caller, &body),
        Route::Auth => api::auth::answer(app, caller, &head).await,
        Route::Offline => api::offline::answer(app, caller, &head),
        _ => Err(ApiError::NotFound),
    }
}

/// Reads a whole body of at most `limit` bytes (413 beyond) within `--body-timeout`
/// (408 after, counted).
async fn read_body<B>(app: &App, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: ReqBody + Unpin,
{
    let read = read_whole(body, limit, app.limits.body_timeout).await;
    if read == Err(BodyError::TimedOut) {
        app.metrics.timeout(crate::metrics::Phase::Body);
    }
    Ok(read?)
}
