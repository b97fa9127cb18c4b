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
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

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
/// `-Expose-Headers` regardless). Goes right outside [`layer`], whose service it passes by
/// for a request that is not a CORS request (no `Origin`), adding only its `Vary`.
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

/// What [`Guard`] answers: a refusal at once; or the CORS layer's answer, as is or
/// stripped of its CORS headers; or, to a request without `Origin`, the answer of the
/// service behind the CORS layer with the CORS layer's `Vary`.
type GuardFuture<F, G, E> = Either<
    Ready<Result<Response, E>>,
    Either<Either<F, MapOk<F, fn(Response) -> Response>>, MapOk<G, fn(Response) -> Response>>,
>;

/// The `Vary` that tower-http's CORS layer of [`layer`] puts on every answer, for the
/// answers [`Guard`] makes without it: `origin` alone, as tower-http 0.7 derives it from a
/// per-origin `allow_origin` and fixed method and header lists (a unit test holds it to
/// what the layer itself sends).
const CORS_VARY: HeaderValue = HeaderValue::from_static("origin");

/// Adds [`CORS_VARY`] as the CORS layer does (after any `Vary` of the answer's own).
fn add_vary(mut response: Response) -> Response {
    response.headers_mut().append(header::VARY, CORS_VARY);
    response
}

impl<S> Service<Request> for Guard<Cors<S>>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<<Cors<S> as Service<Request>>::Future, S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let headers = request.headers();
        let origin = headers.get(header::ORIGIN);
        // Not a CORS request (no `Origin`; not a preflight, which the CORS layer answers
        // itself): everything the CORS layer would add but `Vary` is stripped below, so
        // the layer is passed by (its headers were built and merged on every request:
        // 4.5k instructions of a JSON API request, bench/FINDINGS.md session 12). Polling the
        // CORS layer for readiness polled the service behind it.
        if origin.is_none() && request.method() != Method::OPTIONS {
            let future = self.inner.get_mut().call(request);
            return Either::Right(Either::Right(future.map_ok(add_vary as fn(_) -> _)));
        }
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
            Either::Right(Either::Left(Either::Left(future)))
        } else {
            Either::Right(Either::Left(Either::Right(
                future.map_ok(strip_cors as fn(_) -> _),
            )))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt as _;

    use super::*;

    /// An answer with a header and a `Vary` of its own.
    async fn answer(_: Request) -> Result<Response, std::convert::Infallible> {
        let mut response = Response::new(Body::from("ok"));
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
            .headers_mut()
            .insert("x-own", HeaderValue::from_static("1"));
        Ok(response)
    }

    fn config() -> LegacyConfig {
        LegacyConfig {
            allowed_origins: vec!["https://desk.example.com".into()],
            ..LegacyConfig::default()
        }
    }

    fn request(method: Method, origin: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri("/api/v2/me");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::empty()).unwrap()
    }

    /// The headers of an answer, in order, as `name: value` lines.
    fn lines(response: &Response) -> Vec<String> {
        response
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect()
    }

    /// A request without `Origin` passes the CORS layer by; its answer must read as the
    /// CORS layer's answer with the guard's stripping did before.
    #[tokio::test]
    async fn a_request_without_origin_gets_what_the_cors_layer_gave_it() {
        let config = config();
        let service = tower::service_fn(answer);
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let guarded = GuardLayer::new(&config)
                .layer(layer(&config).layer(service))
                .oneshot(request(method.clone(), None))
                .await
                .unwrap();
            let through_cors = strip_cors(
                layer(&config)
                    .layer(service)
                    .oneshot(request(method.clone(), None))
                    .await
                    .unwrap(),
            );
            assert_eq!(lines(&guarded), lines(&through_cors), "{method}");
            assert_eq!(guarded.headers().get_all(header::VARY).iter().count(), 2);
        }
    }

    /// Preflights and requests with an origin still go through the CORS layer.
    #[tokio::test]
    async fn cors_requests_still_get_the_cors_layers_answer() {
        let config = config();
        let service = tower::service_fn(answer);
        let allowed = GuardLayer::new(&config)
            .layer(layer(&config).layer(service))
            .oneshot(request(Method::GET, Some("https://desk.example.com")))
            .await
            .unwrap();
        assert_eq!(
            allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://desk.example.com"
        );
        let preflight = GuardLayer::new(&config)
            .layer(layer(&config).layer(service))
            .oneshot(request(Method::OPTIONS, None))
            .await
            .unwrap();
        assert!(
            preflight.headers().get("x-own").is_none(),
            "answered by the CORS layer"
        );
    }
}
