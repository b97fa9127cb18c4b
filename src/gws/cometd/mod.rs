//! The CometD (Bayeux 1.0) endpoint at `/api/v2/notifications`: GWS call, device and
//! channel notifications for legacy desktops, over `long-polling` and `websocket`,
//! following `shared/spec/bayeux.md`.
//!
//! # Pieces
//! - [`protocol`]: meta channels, replies, advice and error strings, shared by both transports.
//! - [`long_polling`] and [`websocket`]: the two transports on the same path.
//! - [`registry`] and [`session`]: sessions by `clientId` and by user, queues, the sweeper.
//! - [`moving`]: cluster mode's movable sessions (records in the engine, adoption).
//! - [`bridge`]: one task reading the core's event stream and dispatching by user.
//! - [`crate::gws::auth`]: the handshake accepts a `JSESSIONID` session or Basic credentials.
//! - [`channel`]: names, wildcards (`/v2/me/*`, `/v2/me/**`) and what a user may read.
//!
//! The Bayeux logic is hand-written: no Rust crate implements a CometD-compatible server.
//!
//! # Bounds
//! Settings are the `[cometd]` table ([`CometdConfig`](crate::gws::config::CometdConfig)).
//!
//! - Every session queue holds at most `cometd.max_queue` messages (default
//!   [`DEFAULT_MAX_QUEUE`](crate::gws::config::DEFAULT_MAX_QUEUE)); with the ack extension
//!   that includes sent but unacknowledged ones. **At the limit the session is dropped**, with a `warn` log naming the client and
//!   the reason (`queue limit reached`): its queue is freed at once, a held connect is
//!   answered `402::Unknown client` with `advice.reconnect:"handshake"`, and so is the
//!   client's next message. The client re-handshakes and re-subscribes, and knows it must
//!   reload its calls, instead of silently missing the messages an "oldest dropped" policy
//!   would lose.
//! - A long-polling client that stops polling is swept `interval + maxInterval` after its
//!   last connect reply (default 10 s); a held connect is never swept.
//! - At most `cometd.max_sessions` sessions (default
//!   [`DEFAULT_MAX_SESSIONS`](crate::gws::config::DEFAULT_MAX_SESSIONS)); further
//!   handshakes get `503::too_many_sessions`. Requests and WebSocket messages are capped at
//!   `cometd.max_message_size` bytes and `cometd.max_batch` messages.
//! - Subscriptions are limited to the few readable `/v2/me` channels, so their set is small.
//! - Cluster mode: one record per ack session in the engine, with a TTL of twice a held
//!   connect plus `interval + maxInterval` (at least 5 s), written at handshake and on
//!   (un)subscribe, re-written at most every quarter TTL on a connect, deleted when the
//!   session ends here ([`moving`]). Writes are coalesced per `clientId` in one task: at
//!   most one pending write per session.
//!
//! # Choices
//! - Events go out with `/meta/connect` replies on long-polling; on a WebSocket they are
//!   pushed at once unless the ack extension is on.
//! - With the ack extension, `ext.ack` in a connect reply is a position in the event log
//!   (the sequence of the last event offered to the session, unchanged by an empty reply),
//!   not a per-session counter: clients only echo it, and in cluster mode it tells any
//!   instance where the client is ([`session`], [`moving`]).
//! - Cluster mode: an ack session's connect that reaches another instance (its own died
//!   or drained, or the balancer moved it) is adopted there without a new handshake, with
//!   the events it missed replayed from the history and none twice ([`moving`] says when,
//!   and what a client of an instance that was paused sees). Without ack, the client gets
//!   `402` and handshakes again.
//! - A held long-poll superseded by a newer connect of the same session gets HTTP 409.
//! - Browsers: the JSON API's CORS policy applies here too ([`crate::gws::router`] adds it),
//!   and a WebSocket upgrade from a foreign `Origin` gets 403 (see `get`). The
//!   `BAYEUX_BROWSER` cookie carries the configured `SameSite`/`Secure`
//!   ([`crate::gws::session::CookieAttributes`]).
//! - On shutdown a held connect (long-polling or WebSocket) is answered at once with
//!   `advice: {reconnect: "handshake", interval}` ([`protocol::drain_advice`]; the spec
//!   leaves the choice to the server), and a WebSocket is then closed with 1001: the client
//!   handshakes with whichever instance answers next and re-subscribes. In cluster mode an
//!   ack session is told `reconnect: "retry"` instead, and its record kept: it moves.
//! - Unparseable bodies get HTTP 400 (as CometD); every message of a parseable batch gets a
//!   reply, failed ones with a Bayeux error string. A WebSocket frame that is not a batch
//!   closes the socket with 1007.

pub mod bridge;
pub mod channel;
pub mod long_polling;
pub mod message;
pub mod moving;
pub mod protocol;
pub mod registry;
pub mod session;
pub mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, FromRequestParts as _, Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;

pub use registry::BayeuxRegistry;

use crate::app::AppState;
use crate::auth::ClientAddr;
use crate::gws::base_url::ListenerScheme;

/// The transport a connect is held on, as the `transport` label names it.
#[derive(Debug, Clone, Copy)]
enum HeldOn {
    LongPolling,
    WebSocket,
}

/// Counts a connect held (`delta` 1) or no longer held (-1) on `transport`, in
/// [`names::COMETD_CONNECTS_HELD`](crate::admin::names::COMETD_CONNECTS_HELD). The two
/// handles are kept process-wide, not per connection (a held connect is idle memory on
/// thousands of connections, BENCHMARKS.md figure 4), once the Prometheus recorder is in
/// place: it is global and never replaced, so a handle taken from it stays valid. Before
/// that (metrics off) the lookup goes to the no-op recorder each time. Looking the handle
/// up in the recorder's registry was 1k instructions, twice per long-poll cycle.
fn count_held(transport: HeldOn, delta: f64) {
    static HELD: [std::sync::OnceLock<metrics::Gauge>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let label = match transport {
        HeldOn::LongPolling => "long-polling",
        HeldOn::WebSocket => "websocket",
    };
    let gauge = || metrics::gauge!(crate::admin::names::COMETD_CONNECTS_HELD, "transport" => label);
    if crate::admin::recorder::handle().is_none() {
        gauge().increment(delta);
    } else {
        HELD[transport as usize].get_or_init(gauge).increment(delta);
    }
}

/// The path of the endpoint.
pub const NOTIFICATIONS_PATH: &str = "/api/v2/notifications";

/// Every path the endpoint serves: the path itself and anything below it (CometD JS appends
/// `/handshake`, `/connect`, ...). Each answers `POST` (long-polling) and `GET` (a WebSocket
/// upgrade) and nothing else; the router is built from this list.
pub const PATHS: [&str; 3] = [
    NOTIFICATIONS_PATH,
    "/api/v2/notifications/",
    "/api/v2/notifications/{*rest}",
];

/// What the handlers share.
#[derive(Debug)]
pub struct BayeuxEndpoint {
    /// The gateway state.
    pub state: AppState,
    /// The sessions.
    pub registry: Arc<BayeuxRegistry>,
}

/// Builds the endpoint's routes and starts its bridge and sweeper, which end on
/// `state.shutdown`. Must be called inside a Tokio runtime.
pub fn router(state: AppState) -> Router {
    router_with_registry(state).0
}

/// Like [`router`], also returning the session registry (for tests and metrics).
pub fn router_with_registry(state: AppState) -> (Router, Arc<BayeuxRegistry>) {
    let config = state.config.cometd.clone();
    let registry = Arc::new(BayeuxRegistry::new(config.clone()));
    let shutdown = state.shutdown.clone();
    if let Some(watch) = bridge::start_watch(&state.core, None) {
        registry.start_dispatch_at(watch.position());
        tokio::spawn(bridge::run_bridge(
            state.core.clone(),
            registry.clone(),
            watch,
            shutdown.clone(),
        ));
    }
    if let Some(node) = &state.cluster {
        let records = Arc::new(moving::BayeuxRecords::new(
            node.session_records(),
            node.id().to_owned(),
            state.core.clone(),
            moving::BayeuxRecords::ttl_for(&config),
        ));
        registry.keep_records(records.clone());
        tokio::spawn(records.run(Arc::downgrade(&registry), shutdown.clone()));
    }
    tokio::spawn(registry.clone().run_sweeper(shutdown));
    let endpoint = Arc::new(BayeuxEndpoint {
        state,
        registry: registry.clone(),
    });
    // GET upgrades an HTTP/1.1 connection; CONNECT (RFC 8441, which the HTTP listener
    // enables) opens a WebSocket on an HTTP/2 stream, as browsers do over TLS with h2.
    let routes = post(long_polling::post).get(get).connect(get);
    let router = PATHS
        .into_iter()
        .fold(Router::new(), |router, path| {
            router.route(path, routes.clone())
        })
        .layer(DefaultBodyLimit::max(config.max_message_size))
        .with_state(endpoint);
    (router, registry)
}

/// `GET`: a WebSocket upgrade when offered, else `400 Unknown Bayeux Transport` (no JSONP).
///
/// Browsers apply no CORS to WebSocket: they send the page's `Origin` and the cookies. An
/// upgrade whose `Origin` is neither the gateway's own nor in `legacy.allowed_origins` is
/// refused with 403, as the JSON API refuses that origin's preflight; otherwise any site an
/// agent visits could open a socket with the agent's session cookie. Clients that are not
/// browsers send no `Origin` and are not concerned.
async fn get(State(endpoint): State<Arc<BayeuxEndpoint>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if !endpoint.registry.config().websocket {
        return (StatusCode::BAD_REQUEST, "Unknown Bayeux Transport").into_response();
    }
    if let Some(origin) = parts.headers.get(ORIGIN)
        && !origin_may_upgrade(
            &endpoint.state.config.legacy,
            origin,
            parts.headers.get(HOST),
        )
    {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        tracing::debug!(%origin, "websocket upgrade from a foreign origin refused");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin} is not allowed"),
        )
            .into_response();
    }
    match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => {
            let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
            let listener = ListenerScheme::of(&parts.extensions);
            websocket::upgrade(endpoint, ws, &parts.uri, &parts.headers, client, listener)
        }
        Err(_) => (StatusCode::BAD_REQUEST, "Unknown Bayeux Transport").into_response(),
    }
}

/// Returns whether a browser page of `origin` may open the WebSocket: its own origin
/// (scheme aside, the same authority as the request's `Host`) or an allowed one.
fn origin_may_upgrade(
    legacy: &crate::gws::config::LegacyConfig,
    origin: &HeaderValue,
    host: Option<&HeaderValue>,
) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let same_origin = authority
        .zip(host.and_then(|h| h.to_str().ok()))
        .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
    same_origin || legacy.origin_allowed(origin)
}

#[cfg(test)]
mod tests;
