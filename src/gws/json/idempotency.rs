//! Idempotent retries on the JSON front: an `operationName` POST sent with an
//! `Idempotency-Key` header runs once per user and key; a retry gets the first response
//! (status, headers and body), the same key with another request gets 400
//! `{"statusCode":2,"statusMessage":"idempotency key ... was already used for a different
//! request; ..."}`. The rules, the bound (429 `{"statusCode":4}` with `Retry-After` when
//! the store is full) and the store are the core's ([`crate::core::idempotency`]), shared
//! with the gRPC front. GETs ignore the key: they change nothing.
//!
//! This is a route layer inside authentication (so the caller is known and CSRF was
//! checked) around the handler: the handler's response is read whole once and kept.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::LegacyError;
use crate::app::AppState;
use crate::core::CoreError;
use crate::core::idempotency::{Fingerprint, owner};
use crate::gws::auth::{EndedSession, LegacyCaller};

/// The header carrying an idempotency key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A handler's response, kept whole for retries.
#[derive(Debug, Clone)]
struct KeptResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The error the response reports, for the error log.
    error: Option<LegacyError>,
    /// Whether the handler ended the session.
    ended_session: bool,
}

impl KeptResponse {
    /// Reads a response whole (the handlers' JSON bodies are small).
    async fn read(response: Response) -> Self {
        let (parts, body) = response.into_parts();
        let (status, body) = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => (parts.status, body),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
        };
        Self {
            status,
            headers: parts.headers,
            body,
            error: parts.extensions.get::<LegacyError>().cloned(),
            ended_session: parts.extensions.get::<EndedSession>().is_some(),
        }
    }

    /// Keeps every response but the refusals that did nothing and ask to retry later.
    fn keep(&self) -> bool {
        !matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
    }
}

impl IntoResponse for KeptResponse {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if let Some(error) = self.error {
            response.extensions_mut().insert(error);
        }
        if self.ended_session {
            response.extensions_mut().insert(EndedSession);
        }
        response
    }
}

/// Runs a POST with an `Idempotency-Key` once per user and key (see the module doc).
pub async fn once(state: &AppState, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let Ok(key) = key.to_str().map(str::to_owned) else {
        let error = CoreError::invalid("Idempotency-Key", "must be visible ASCII characters");
        return LegacyError::from(error).into_response();
    };
    let Some(caller) = request.extensions().get::<LegacyCaller>().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // The body limit layer outside bounds this read; over it, the 413 the handler would give.
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return LegacyError::PayloadTooLarge.into_response();
    };
    let fingerprint = fingerprint(parts.uri.path(), &body);
    let request = Request::from_parts(parts, Body::from(body));
    let operation = async move { KeptResponse::read(next.run(request).await).await };
    let replies = state.core.replies();
    match replies
        .run(
            &owner(caller.principal()),
            &key,
            fingerprint,
            KeptResponse::keep,
            operation,
        )
        .await
    {
        Ok(kept) => kept.into_response(),
        Err(error) => LegacyError::from(error).into_response(),
    }
}

/// Hashes a POST: its path (the resource, without a trailing slash) and its JSON body
/// (the operation and its arguments), re-serialised so that spacing does not matter; a
/// body that is not JSON is hashed as sent (the handler refuses it anyway).
fn fingerprint(path: &str, body: &[u8]) -> Fingerprint {
    let path = path.strip_suffix('/').unwrap_or(path);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => Fingerprint::of("gws", path, value.to_string().as_bytes()),
        Err(_) => Fingerprint::of("gws", path, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_resource_and_the_operation_with_its_arguments() {
        let a = fingerprint("/api/v2/me/calls/1", br#"{"operationName":"Hold"}"#);
        assert_eq!(
            a,
            fingerprint("/api/v2/me/calls/1/", b"{ \"operationName\" : \"Hold\" }")
        );
        assert_ne!(
            a,
            fingerprint("/api/v2/me/calls/2", br#"{"operationName":"Hold"}"#)
        );
        assert_ne!(
            a,
            fingerprint("/api/v2/me/calls/1", br#"{"operationName":"Retrieve"}"#)
        );
    }
}
