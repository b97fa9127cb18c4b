//! The wing's JSON API: the GWS v2 `operationName` API of spec §1–§6 over axum, a thin
//! adapter over the same core as gRPC.
//!
//! Routes (each also with a trailing slash), as [`routes`] lists them:
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
//! authentication, sessions and CSRF in [`auth`](crate::gws::auth), CORS in [`cors`],
//! settings in [`LegacyConfig`](crate::gws::config::LegacyConfig), the JSON of calls and
//! devices in [`render`](crate::gws::render).
//!
//! Layers, outermost first, applied to these routes only (never to gRPC streams): error
//! logging, the preflight refusal for unknown origins, tower-http CORS, GWS bodies for the
//! layers' own 413/408, the request timeout, the body limit. The bounds on requests in
//! flight apply before routing, in the serve loop ([`crate::server`]); their refusal is
//! [`LegacyError::Overloaded`]. Authentication runs inside,
//! on matched routes only, so preflights need no credentials; inside it, a POST with an
//! `Idempotency-Key` runs once per user and key ([`idempotency`]).

pub mod calls;
pub mod cors;
pub mod devices;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod operation;
pub mod resources;
pub mod settings;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, any, on};
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
pub use error::LegacyError;

/// One route of the API: a method, a path pattern (also served with a trailing slash) and
/// its handler.
#[derive(Debug)]
pub struct LegacyRoute {
    /// The method (`GET` also answers `HEAD`).
    pub method: Method,
    /// The path pattern, in axum's syntax (`/api/v2/me/calls/{id}`).
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

impl LegacyRoute {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
        Self {
            method,
            path,
            handler: on(filter, handler),
        }
    }
}

/// Returns every route of the API. [`router`] is built from this list, so nothing is served
/// without being listed here; `tests/authz_audit.rs` checks who may call each route.
pub fn routes() -> Vec<LegacyRoute> {
    use Method as M;
    vec![
        LegacyRoute::new(M::GET, "/api/v2/me", resources::get_me),
        LegacyRoute::new(M::POST, "/api/v2/me", resources::post_me),
        LegacyRoute::new(M::GET, "/api/v2/me/devices", devices::list_devices),
        LegacyRoute::new(M::GET, "/api/v2/me/devices/{id}", devices::get_device),
        LegacyRoute::new(M::POST, "/api/v2/me/devices/{id}", devices::post_device),
        LegacyRoute::new(M::GET, "/api/v2/devices/{id}", devices::get_device),
        LegacyRoute::new(M::GET, "/api/v2/me/channels", devices::list_channels),
        LegacyRoute::new(
            M::GET,
            "/api/v2/me/channels/voice",
            devices::get_voice_channel,
        ),
        LegacyRoute::new(
            M::POST,
            "/api/v2/me/channels/voice",
            devices::post_voice_channel,
        ),
        LegacyRoute::new(
            M::POST,
            "/api/v2/users/{id}/channels/voice",
            devices::post_user_voice_channel,
        ),
        LegacyRoute::new(M::POST, "/api/v2/me/devices/{id}/calls", calls::dial),
        LegacyRoute::new(M::GET, "/api/v2/me/calls", calls::list_calls),
        LegacyRoute::new(M::GET, "/api/v2/me/calls/{id}", calls::get_call),
        LegacyRoute::new(M::POST, "/api/v2/me/calls/{id}", calls::post_call),
        LegacyRoute::new(M::GET, "/api/v2/features", resources::list_features),
        LegacyRoute::new(M::GET, "/api/v2/features/{name}", resources::get_feature),
        LegacyRoute::new(M::GET, "/api/v2/diagnostics/version", resources::version),
        LegacyRoute::new(
            M::GET,
            "/api/v2/settings/agent-states",
            settings::get_agent_states,
        ),
        LegacyRoute::new(
            M::GET,
            "/api/v2/voice-environments/{id}",
            settings::get_voice_environment,
        ),
    ]
}

/// The paths under `/api` that no route serves: any method gets 404 `{"statusCode":6}`,
/// without credentials.
pub const UNKNOWN_ROUTES: [&str; 3] = ["/api", "/api/", "/api/{*rest}"];

/// Builds the legacy router with its layers, ready to merge into the HTTP router.
pub fn router(state: AppState) -> Router {
    let legacy = &state.config.legacy;
    let api = routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            with_and_without_slash(router, route.path, route.handler)
        })
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(from_fn_with_state(state.clone(), admitted));
    let api = UNKNOWN_ROUTES
        .into_iter()
        .fold(api, |router, path| router.route(path, any(unknown_route)));
    api.layer(
        ServiceBuilder::new()
            .layer(error::LogErrorsLayer)
            .layer(cors::GuardLayer::new(legacy))
            .layer(cors::layer(legacy))
            .layer(MapResponseLayer::new(error::gws_layer_bodies))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                legacy.request_timeout(),
            ))
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(legacy.max_body_bytes)),
    )
    .with_state(state)
}

/// The routes' own middleware, one `from_fn` for both steps (each `from_fn` boxes its
/// future and clones the stack behind it per request; bench/FINDINGS.md, session 11):
/// authentication ([`crate::gws::auth::authenticate_then`]), then, for an admitted
/// request, the idempotency key ([`idempotency::once`]) around the handler.
async fn admitted(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::gws::auth::authenticate_then(&state, request, |request| {
        idempotency::once(&state, request, next)
    })
    .await
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
