//! CORS for browser desktops (spec §2 `crossOriginSettings`), with tower-http's
//! [`CorsLayer`]: origins from `legacy.allowed_origins`, methods
//! `GET,POST,PUT,DELETE,OPTIONS`, the GWS request headers, credentials allowed, the CSRF
//! headers exposed, preflights cached for 120 s. [`crate::gws::router`] puts the same
//! [`GuardLayer`] and [`layer`] on the CometD endpoint, so a desktop on another allowed origin also reads its
//! notifications.
//!
//! An origin that is not allowed gets no CORS headers, so the browser withholds every
//! answer from the page; its preflight is also refused outright with 403
//! `{"statusCode":3,...}` by [`GuardLayer`], so a page from another site
//! never gets to send a JSON POST. (A cross-site form POST cannot preflight-free reach an
//! operation either: POSTs must be `application/json`, or they get 415.)

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use futures::TryFutureExt as _;
use futures::future::{Either, MapOk, Ready, ready};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::LegacyError;
use crate::gws::auth::{CSRF_HEADER_HEADER, CSRF_TOKEN_HEADER};
use crate::gws::config::{CORS_MAX_AGE, LegacyConfig};

/// Request headers a browser may send (spec §2 `allowedHeaders`, and `idempotency-key` for
/// retries, see [`super::idempotency`]).
const ALLOWED_HEADERS: [&str; 11] = [
    "x-requested-with",
    "content-type",
    "accept",
    "origin",
    "cookie",
    "authorization",
    "ssid",
    "surl",
    "contactcenterid",
    "x-csrf-token",
    "idempotency-key",
];

/// Builds the CORS layer for the configured origins.
pub fn layer(config: &LegacyConfig) -> CorsLayer {
    let config = config.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            allowed(&config, origin)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .allow_credentials(true)
        .expose_headers([CSRF_HEADER_HEADER, CSRF_TOKEN_HEADER])
        .max_age(CORS_MAX_AGE)
}

fn allowed(config: &LegacyConfig, origin: &HeaderValue) -> bool {
    origin.to_str().is_ok_and(|o| config.origin_allowed(o))
}

/// The layer of [`Guard`]: refuses a preflight from an origin that is not allowed with 403
/// and a GWS body, and keeps the CORS layer's headers off every answer to a request without
/// an allowed origin (tower-http adds `Access-Control-Allow-Credentials` and
/// `-Expose-Headers` regardless). Goes outside [`layer`].
///
/// A hand-written tower service rather than `axum::middleware::from_fn`: `from_fn` boxes
/// the inner future and clones the inner service on every request, and a held CometD
/// long-poll keeps both for its whole hold (1.8 KiB per idle session; bench/FINDINGS.md,
/// figure 4). This one adds nothing to the inner future but a function pointer.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    config: Arc<LegacyConfig>,
}

impl GuardLayer {
    /// Builds the guard for the configured origins.
    pub fn new(config: &LegacyConfig) -> Self {
        Self {
            config: Arc::new(config.clone()),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    config: Arc<LegacyConfig>,
}

/// What [`Guard`] answers: a refusal at once, or the inner answer, as is or stripped of
/// its CORS headers.
type GuardFuture<F, E> =
    Either<Ready<Result<Response, E>>, Either<F, MapOk<F, fn(Response) -> Response>>>;

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let headers = request.headers();
        let origin = headers.get(header::ORIGIN);
        let origin_ok = origin.is_some_and(|o| allowed(&self.config, o));
        if let Some(origin) = origin.filter(|_| !origin_ok)
            && request.method() == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            return Either::Left(ready(
                Ok(LegacyError::OriginRefused(origin).into_response()),
            ));
        }
        let future = self.inner.call(request);
        if origin_ok {
            Either::Right(Either::Left(future))
        } else {
            Either::Right(Either::Right(future.map_ok(strip_cors as fn(_) -> _)))
        }
    }
}

/// Removes the `Access-Control-*` headers of an answer to a request without an allowed
/// origin.
fn strip_cors(mut response: Response) -> Response {
    let cors: Vec<_> = response
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        response.headers_mut().remove(name);
    }
    response
}
