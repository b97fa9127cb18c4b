//! The legacy GWS v2 front-end: the JSON `operationName` API of spec §1–§6 over axum, a
//! thin adapter over the same core as gRPC.
//!
//! Routes (each also with a trailing slash):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/v2/me[?subresources=]` | the user ([`resources`]) |
//! | POST | `/api/v2/me` | StartContactCenterSession, EndContactCenterSession |
//! | GET | `/api/v2/me/devices[?fields=]`, `/api/v2/me/devices/{id}`, `/api/v2/devices/{id}` | the user's device ([`devices`]) |
//! | POST | `/api/v2/me/devices/{id}` | DoNotDisturbOn/Off, ForwardCallsOn/Off, ListenIn, Coach, BargeIn, CancelSupervisorMonitoring |
//! | GET | `/api/v2/me/channels[?fields=]`, `/api/v2/me/channels/voice` | the voice channel |
//! | POST | `/api/v2/me/channels/voice` | Ready, NotReady, AfterCallWork, AuxWork |
//! | POST | `/api/v2/me/devices/{id}/calls` | Dial ([`calls`]) |
//! | GET | `/api/v2/me/calls[?fields=]`, `/api/v2/me/calls/{id}` | calls |
//! | POST | `/api/v2/me/calls/{id}` | every call operation of spec §6.1–§6.4 ([`operation`]) |
//! | GET | `/api/v2/features[?fields=]`, `/api/v2/features/{name}` | features |
//! | GET | `/api/v2/diagnostics/version` | the gateway's version |
//!
//! Anything else under `/api` answers 404 `{"statusCode":6,...}`; a method a route does
//! not serve answers 405 `{"statusCode":3,...}`. Errors are described in [`error`],
//! authentication, sessions and CSRF in [`auth`], CORS in [`cors`], settings in
//! [`config`].
//!
//! Layers, outermost first, applied to these routes only (never to gRPC streams): error
//! logging, the preflight refusal for unknown origins, tower-http CORS, GWS bodies for the
//! layers' own 413/408, the request timeout, the body limit. Authentication runs inside,
//! on matched routes only, so preflights need no credentials.

pub mod auth;
pub mod calls;
pub mod config;
pub mod cors;
pub mod devices;
pub mod error;
pub mod extract;
pub mod model;
pub mod operation;
pub mod resources;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, any, get};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
pub use error::LegacyError;

/// Builds the legacy router with its layers, ready to merge into the HTTP router.
pub fn router(state: AppState) -> Router {
    let legacy = &state.config.legacy;
    let api = [
        (
            "/api/v2/me",
            get(resources::get_me).post(resources::post_me),
        ),
        ("/api/v2/me/devices", get(devices::list_devices)),
        (
            "/api/v2/me/devices/{id}",
            get(devices::get_device).post(devices::post_device),
        ),
        ("/api/v2/devices/{id}", get(devices::get_device)),
        ("/api/v2/me/channels", get(devices::list_channels)),
        (
            "/api/v2/me/channels/voice",
            get(devices::get_voice_channel).post(devices::post_voice_channel),
        ),
        (
            "/api/v2/me/devices/{id}/calls",
            axum::routing::post(calls::dial),
        ),
        ("/api/v2/me/calls", get(calls::list_calls)),
        (
            "/api/v2/me/calls/{id}",
            get(calls::get_call).post(calls::post_call),
        ),
        ("/api/v2/features", get(resources::list_features)),
        ("/api/v2/features/{name}", get(resources::get_feature)),
        ("/api/v2/diagnostics/version", get(resources::version)),
    ]
    .into_iter()
    .fold(Router::new(), |router, (path, methods)| {
        with_and_without_slash(router, path, methods.fallback(method_not_allowed))
    })
    .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    let api = ["/api", "/api/", "/api/{*rest}"]
        .into_iter()
        .fold(api, |router, path| router.route(path, any(unknown_route)));
    api.layer(
        ServiceBuilder::new()
            .layer(from_fn(error::log_errors))
            .layer(from_fn_with_state(state.clone(), cors::guard))
            .layer(cors::layer(legacy))
            .layer(from_fn(error::gws_layer_bodies))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                legacy.request_timeout(),
            ))
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(legacy.max_body_bytes)),
    )
    .with_state(state)
}

fn with_and_without_slash(
    router: Router<AppState>,
    path: &str,
    methods: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, methods.clone())
        .route(&format!("{path}/"), methods)
}

async fn method_not_allowed(method: Method) -> LegacyError {
    LegacyError::MethodNotAllowed(method.to_string())
}

async fn unknown_route(uri: Uri) -> LegacyError {
    LegacyError::UnknownRoute(uri.path().to_owned())
}

#[cfg(test)]
mod tests;
