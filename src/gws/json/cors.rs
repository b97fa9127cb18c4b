//! CORS for browser desktops (spec §2 `crossOriginSettings`), with tower-http's
//! [`CorsLayer`]: origins from `legacy.allowed_origins`, methods
//! `GET,POST,PUT,DELETE,OPTIONS`, the GWS request headers, credentials allowed, the CSRF
//! headers exposed, preflights cached for 120 s. [`crate::gws::router`] puts the same
//! [`guard`] and [`layer`] on the CometD endpoint, so a desktop on another allowed origin also reads its
//! notifications.
//!
//! An origin that is not allowed gets no CORS headers, so the browser withholds every
//! answer from the page; its preflight is also refused outright with 403
//! `{"statusCode":3,...}` by [`guard`], so a page from another site
//! never gets to send a JSON POST. (A cross-site form POST cannot preflight-free reach an
//! operation either: POSTs must be `application/json`, or they get 415.)

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::LegacyError;
use crate::app::AppState;
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

/// Refuses a preflight from an origin that is not allowed with 403 and a GWS body, and
/// keeps the CORS layer's headers off every answer to a request without an allowed origin
/// (tower-http adds `Access-Control-Allow-Credentials` and `-Expose-Headers` regardless).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let origin_opt = headers.get(header::ORIGIN);
    let origin_ok = origin_opt.is_some_and(|o| allowed(&state.config.legacy, o));
    if let Some(origin) = origin_opt.filter(|_| !origin_ok)
        && request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        return LegacyError::OriginRefused(origin).into_response();
    }
    let mut response = next.run(request).await;
    if !origin_ok {
        let cors: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            response.headers_mut().remove(name);
        }
    }
    response
}
