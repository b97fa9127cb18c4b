//! [`LegacyError`]: every failure of the legacy front-end, turned into a GWS body
//! `{"statusCode":N,"statusMessage":"…"}` with an HTTP status in one place.
//!
//! Core errors keep the `statusCode` of [`CoreError::status_code`], so a failure reads the
//! same over JSON as over gRPC. HTTP statuses (spec §3.2; its proposed mapping where the GWS
//! sources are silent):
//!
//! | failure | HTTP | statusCode |
//! |---|---|---|
//! | missing parameter | 400 | 1 |
//! | mistyped or invalid parameter, unknown `operationName`, operation not in `capabilities` or the device's state, malformed JSON | 400 | 2 |
//! | missing credentials, bad credentials | 401 | 20 |
//! | feature not assigned to the contact center | 403 | 3 |
//! | missing or wrong CSRF token (`Missing or invalid Csrf token`) | 403 | 3 |
//! | CORS preflight from an origin that is not allowed | 403 | 3 |
//! | another user's call, monitoring without the supervisor role | 403 | 5 |
//! | unknown call, device, feature or route | 404 | 6 |
//! | method not served on a known route | 405 | 3 |
//! | resource in use (a busy number, a device another supervisor monitors) | 409 | 19 |
//! | request took too long | 408 | 4 |
//! | body larger than `legacy.max_body_bytes` | 413 | 2 |
//! | `Content-Type` other than JSON on a POST | 415 | 2 |
//! | switch unavailable | 503 | 4 |
//! | credential checks all busy (`Retry-After`) | 503 | 4 |
//! | requests in flight at a bound of `[server]` (`Retry-After`; [`crate::shed`]) | 503 | 4 |
//! | too many failed sign-ins for the user name or from the address (`Retry-After`) | 429 | 3 |
//! | bug in the gateway | 500 | 4 |
//!
//! Each response carries the error as an extension; [`LogErrorsLayer`] logs it once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::{CoreError, ErrorKind};
use crate::shed::Refused;

/// The message GWS sends with a CSRF refusal (spec §2).
pub const CSRF_MESSAGE: &str = "Missing or invalid Csrf token";

/// The `{"statusCode":0}` reply of an accepted operation: the success member of the
/// `statusCode` vocabulary whose failures [`LegacyError`] maps.
pub fn accepted() -> Json<serde_json::Value> {
    Json(json!({ "statusCode": 0 }))
}

/// A failure of a legacy request; nothing was changed when one is returned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LegacyError {
    /// A core operation failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// No route serves this path.
    #[error("no resource at {0}")]
    UnknownRoute(String),
    /// The route exists but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The POST body is not declared as JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The body is not a JSON object.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    /// The request took longer than the timeout.
    #[error("the request took too long")]
    Timeout,
    /// The CSRF token is missing or wrong.
    #[error("{}", CSRF_MESSAGE)]
    Csrf,
    /// A CORS preflight came from an origin that is not allowed.
    #[error("origin {0} is not allowed")]
    OriginRefused(String),
    /// A bound on requests in flight was reached: refused at once, nothing done.
    #[error(transparent)]
    Overloaded(#[from] Refused),
}

impl LegacyError {
    /// Returns the HTTP status.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Core(
                CoreError::InUse(_)
                | CoreError::Upstream {
                    status_code: 19, ..
                },
            ) => StatusCode::CONFLICT,
            Self::Core(error) => match error.kind() {
                ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::FailedPrecondition
                | ErrorKind::InvalidArgument
                | ErrorKind::OutOfRange => StatusCode::BAD_REQUEST,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::UnknownRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Csrf | Self::OriginRefused(_) => StatusCode::FORBIDDEN,
            Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the GWS `statusCode` (spec §3.1).
    pub fn status_code(&self) -> u32 {
        match self {
            Self::Core(error) => error.status_code(),
            Self::UnknownRoute(_) => 6,
            Self::MethodNotAllowed(_) | Self::Csrf | Self::OriginRefused(_) => 3,
            Self::UnsupportedMediaType | Self::MalformedJson(_) | Self::PayloadTooLarge => 2,
            Self::Timeout | Self::Overloaded(_) => 4,
        }
    }
}

impl IntoResponse for LegacyError {
    fn into_response(self) -> Response {
        let body = json!({ "statusCode": self.status_code(), "statusMessage": self.to_string() });
        let mut response = (self.http_status(), Json(body)).into_response();
        let retry_after = match &self {
            Self::Core(error) => error.retry_after(),
            Self::Overloaded(_) => Some(crate::shed::RETRY_AFTER),
            _ => None,
        };
        if let Some(after) = retry_after {
            // Whole seconds, rounded up: a client must not come back before the bound.
            let secs = after.as_millis().div_ceil(1000).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
        }
        if self.http_status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"voice-gateway\""),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<JsonRejection> for LegacyError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            _ => Self::MalformedJson(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for LegacyError {
    fn from(rejection: PathRejection) -> Self {
        Self::Core(CoreError::invalid("path", rejection.body_text()))
    }
}

impl From<QueryRejection> for LegacyError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Core(CoreError::invalid("query", rejection.body_text()))
    }
}

/// Logs the error a response carries, once per request: client mistakes at debug, the
/// gateway's own failures at warn. A layer of its own rather than `from_fn`, which boxes
/// its future and clones the whole stack behind it on every request (bench/FINDINGS.md,
/// session 11); its future only waits for the inner one.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogErrorsLayer;

impl<S> tower::Layer<S> for LogErrorsLayer {
    type Service = LogErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LogErrors { inner }
    }
}

/// The service of [`LogErrorsLayer`].
#[derive(Debug, Clone)]
pub struct LogErrors<S> {
    inner: S,
}

impl<S> tower::Service<Request> for LogErrors<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LogErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // `Uri` and a standard `Method` are shared, not copied.
        let method = request.method().clone();
        let uri = request.uri().clone();
        LogErrorsFuture {
            inner: self.inner.call(request),
            method,
            uri,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`LogErrors`].
    pub struct LogErrorsFuture<F> {
        #[pin]
        inner: F,
        method: Method,
        uri: Uri,
    }
}

impl<F, E> Future for LogErrorsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(error) = response.extensions().get::<LegacyError>() {
            let (method, path) = (&*this.method, this.uri.path());
            let status = response.status();
            if status.is_server_error() {
                tracing::warn!(%method, %path, %status, %error, "legacy request failed");
            } else {
                tracing::debug!(%method, %path, %status, %error, "legacy request refused");
            }
        }
        Poll::Ready(Ok(response))
    }
}

/// Gives the bare responses of the tower-http layers (413 from the body limit, 408 from the
/// timeout) a GWS body, so every reply of the legacy API is JSON. A response mapping
/// (`tower::util::MapResponseLayer`), which needs no future of its own.
pub fn gws_layer_bodies<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(axum::body::Body::new);
    if response.extensions().get::<LegacyError>().is_some() {
        return response;
    }
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => LegacyError::PayloadTooLarge.into_response(),
        StatusCode::REQUEST_TIMEOUT => LegacyError::Timeout.into_response(),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CallId, CallState, Operation};

    #[test]
    fn core_errors_keep_their_status_code() {
        let cases = [
            (CoreError::MissingParameter("destination"), 400, 1),
            (
                CoreError::NotCapable {
                    call_id: CallId::new("c"),
                    operation: Operation::Hold,
                    state: CallState::Held,
                },
                400,
                2,
            ),
            (CoreError::CallNotFound(CallId::new("c")), 404, 6),
            (CoreError::PermissionDenied("no".into()), 403, 5),
            (CoreError::Unauthenticated("no".into()), 401, 20),
            (CoreError::Unavailable("down".into()), 503, 4),
            (CoreError::InUse("monitored".into()), 409, 19),
            (CoreError::Precondition("inactive".into()), 400, 2),
        ];
        for (core, http, code) in cases {
            let expected = core.status_code();
            let error = LegacyError::from(core);
            assert_eq!(error.http_status().as_u16(), http, "{error}");
            assert_eq!(error.status_code(), code, "{error}");
            assert_eq!(error.status_code(), expected);
        }
    }

    #[test]
    fn a_load_shedding_refusal_is_503_with_status_code_4_and_retry_after() {
        let refused = crate::shed::Refused {
            scope: crate::shed::Scope::Listener,
            limit: 8,
        };
        let response = LegacyError::Overloaded(refused).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let error = LegacyError::Overloaded(refused);
        assert_eq!(error.status_code(), 4);
        assert_eq!(
            error.to_string(),
            "overloaded: 8 requests in flight on this listener; retry later"
        );
    }

    #[test]
    fn the_csrf_refusal_reads_as_gws_sends_it() {
        assert_eq!(LegacyError::Csrf.to_string(), CSRF_MESSAGE);
        assert_eq!(LegacyError::Csrf.http_status(), StatusCode::FORBIDDEN);
    }
}
