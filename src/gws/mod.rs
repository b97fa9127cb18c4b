//! Wing 2: everything a legacy GWS agent desktop talks to, the GWS v2 Voice API over HTTP.
//!
//! - [`json`]: the JSON API (`operationName` POSTs, resource GETs, GWS errors, CORS).
//! - [`cometd`]: the CometD (Bayeux) notifications endpoint, fed by one bridge task.
//! - [`render`]: the JSON of calls, devices, channels, users and features, for the resource
//!   GETs and for the notifications alike, with links from [`base_url`]: the one function
//!   that says where the gateway is reached (a configured public URL, trusted proxy headers,
//!   or the listener's scheme and the request's host).
//! - [`session`]: the HTTP sessions (`JSESSIONID`) the JSON API opens and the CometD
//!   handshake trusts.
//! - [`auth`]: who is calling: Basic credentials, session cookies and CSRF, for both.
//! - [`config`]: the wing's leaf settings, the `[legacy]` and `[cometd]` tables.
//!
//! Imports go down only: the wing imports the core, [`crate::auth`] and [`crate::app`],
//! never the gRPC wing; [`json`] and [`cometd`] never import each other, and share what
//! they both need through the files at this level.

pub mod auth;
pub mod base_url;
pub mod cometd;
pub mod config;
pub mod json;
pub mod render;
pub mod session;

use std::sync::Arc;

use axum::Router;
use tower::ServiceBuilder;

use crate::app::AppState;

/// Builds the wing's router: the JSON API ([`json::routes`], with its layers) and the
/// CometD endpoint ([`cometd::PATHS`]), whose bridge and sweeper it starts. Must be called
/// inside a Tokio runtime.
///
/// The CometD endpoint gets the JSON API's CORS policy ([`json::cors`]): a desktop served
/// from another allowed origin reads its long-polling answers with credentials, and a
/// disallowed origin's preflight is refused.
pub fn router(state: AppState) -> Router {
    router_with_registry(state).0
}

/// Like [`router`], also returning the CometD session registry (for tests, which watch and
/// drop sessions as the server does).
pub fn router_with_registry(state: AppState) -> (Router, Arc<cometd::BayeuxRegistry>) {
    let cors = ServiceBuilder::new()
        .layer(json::cors::GuardLayer::new(&state.config.legacy))
        .layer(json::cors::layer(&state.config.legacy));
    let (notifications, registry) = cometd::router_with_registry(state.clone());
    let router = Router::new()
        .merge(json::router(state))
        .merge(notifications.layer(cors));
    (router, registry)
}
