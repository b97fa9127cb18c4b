//! voice-gateway: phone-call control over gRPC and the GWS v2 Voice API, on one core.
//!
//! # Layout
//!
//! - [`core`]: the product. Users, contact centers and features; calls with the GWS state
//!   machine and capabilities; the numbered event stream. It never imports tonic, prost,
//!   axum, http or serde_json.
//! - [`backend`]: the implementations of the core's ports ([`core::port`]): the embedded
//!   switch (a small PBX), and the bridge to an upstream GWS that owns the calls.
//! - `grpc`: wing 1, the `voice.v1` gRPC front-end, a thin adapter over the core.
//! - [`gws`]: wing 2, everything a legacy GWS desktop talks to: the GWS v2 JSON API
//!   ([`gws::json`]), the CometD notifications endpoint ([`gws::cometd`]), the one renderer
//!   of their JSON ([`gws::render`]), HTTP sessions ([`gws::session`]) and their
//!   authentication ([`gws::auth`]). The wings never import each other.
//! - [`auth`]: one authenticator for every front (bounded, cached, throttled checks).
//! - [`app`]: the state every front-end shares.
//! - [`config`]: the typed configuration and the built-in demo, built from the leaf
//!   settings of each part (such as [`gws::config`]); it imports no front's module.
//! - [`upstream`]: clients of an upstream GWS for bridge mode (the Bayeux client).
//! - [`cluster`]: cluster mode, several bridge instances on one engine: the engine's
//!   contract (a shared log, users' leases), the in-memory engine, and each instance's
//!   membership (the tail into the core, the leases its bridge sessions hold).
//! - [`tls`]: TLS on the listeners and the client certificates of mutual TLS.
//! - [`desktop`]: the agent desktop demo page at `/desktop/`, when a folder is configured.
//! - [`admin`]: the admin listener (metrics, health, readiness) and the request layers
//!   (request ids, spans, request metrics) both fronts run.
//! - [`server`]: the API listeners' serve loop, its bounds (the `[server]` table) and the
//!   drain on shutdown; [`shed`]: the load-shedding bounds on connections and requests in
//!   flight it applies.
//! - `run` wires them together over listeners the caller bound.

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod core;
pub mod desktop;
pub mod grpc;
pub mod gws;
pub mod server;
pub mod shed;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::backend::embedded::EmbeddedSwitch;
use crate::config::Config;
use crate::core::CallControl;
use crate::gws::session::SessionStore;
use crate::server::ListenerTls;
use crate::tls::ServerTls;

/// The listeners the gateway serves, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The HTTP listener; `None` serves HTTP on the gRPC listener too (one port).
    pub http: Option<TcpListener>,
}

/// Builds the shared state: the directory, the core over the embedded switch or, with
/// `upstream.url`, over the bridge to an upstream GWS, and the authenticator.
pub fn build_state(config: Config, shutdown: CancellationToken) -> anyhow::Result<AppState> {
    Ok(build_state_in(config, shutdown, None)?.0)
}

/// Like [`build_state`], in cluster mode over `engine` when given (tests and demos pass an
/// in-memory one), otherwise over the engine `cluster.url` names. The tail is started but
/// the core's log not caught up with the shared log yet: [`Gateway::build`] waits for that.
fn build_state_in(
    config: Config,
    shutdown: CancellationToken,
    engine: Option<cluster::Engine>,
) -> anyhow::Result<(AppState, Option<Arc<cluster::node::ClusterNode>>)> {
    let directory = config.directory().context("invalid configuration")?;
    if directory.has_clear_secrets() {
        tracing::warn!("demo credentials are active: passwords or tokens are configured in clear");
    }
    let mut cluster_node = None;
    let core = match &config.upstream.url {
        Some(url) => {
            if !config.users.is_empty() {
                tracing::info!(
                    ignored = config.users.len(),
                    "bridge mode: users come from the upstream; the configured users are ignored"
                );
            }
            let bridge = backend::bridge::GwsBridge::new(&config.upstream, shutdown.clone())?;
            let port = Arc::new(backend::bridge::GwsPort(bridge.clone()));
            let mut core = CallControl::bridged(
                directory,
                port,
                config.core_limits()?,
                config.upstream.reply_wait(),
            );
            let engine = match (engine, &config.cluster.url) {
                (Some(engine), _) => Some(engine),
                (None, Some(_)) => Some(cluster::connect(&config.cluster)?),
                (None, None) => None,
            };
            if let Some(engine) = engine {
                tracing::info!(%engine, "cluster mode: one event log and one owner per user across instances");
                let node = cluster::node::ClusterNode::new(
                    engine,
                    config.cluster.lease_ttl(),
                    config.cluster.renew_interval(),
                    shutdown.clone(),
                );
                core = core.with_shared_events(node.clone());
                bridge.join_cluster(node.clone());
                cluster_node = Some(node);
            }
            let core = Arc::new(core);
            bridge.attach(&core);
            if let Some(node) = &cluster_node {
                node.attach(&core);
            }
            tracing::info!(upstream = %url, "bridge mode: calls are owned by the upstream GWS");
            core
        }
        None if engine.is_some() || config.cluster.url.is_some() => {
            anyhow::bail!(
                "cluster mode needs upstream.url: it shares bridge instances in front of an upstream GWS (--cluster needs --upstream)"
            );
        }
        None => embedded_core(&config, directory, &shutdown)?,
    };
    let auth = Arc::new(auth::Authenticator::new(core.clone(), &config.auth));
    let state = AppState::new(app::Shared {
        core,
        auth,
        sessions: Arc::new(SessionStore::new(
            config.legacy.session_idle(),
            config.legacy.session_limit,
        )),
        config: Arc::new(config),
        shutdown,
        cluster: cluster_node.clone(),
        upgraded: tokio_util::task::TaskTracker::new(),
    });
    Ok((state, cluster_node))
}

/// The path of the HTTP health check, answered to anyone.
pub const HEALTH_PATH: &str = "/healthz";

/// Builds the core over the embedded switch, and the task that feeds switch events into
/// the core until `shutdown`.
fn embedded_core(
    config: &Config,
    directory: core::Directory,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<CallControl>> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let numbers = directory.phone_numbers();
    let switch = Arc::new(
        EmbeddedSwitch::new(numbers, config.switch.external_answer_delay(), events_tx)
            .with_failing_numbers(
                config.switch.busy_numbers.iter().cloned(),
                config.switch.unreachable_numbers.iter().cloned(),
            ),
    );
    let core = Arc::new(CallControl::new(directory, switch, config.core_limits()?));
    let pump_core = core.clone();
    let pump_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = pump_shutdown.cancelled() => break,
                event = events_rx.recv() => match event {
                    Some(event) => pump_core.apply_switch_event(event),
                    None => break,
                },
            }
        }
    });
    Ok(core)
}

/// Builds the HTTP side: health, the GWS wing ([`gws::router`]: the JSON API of
/// [`gws::json::routes`] and the CometD endpoint of [`gws::cometd::PATHS`]) and, when
/// configured, the desktop page's static files ([`desktop`], public, outside `/api`). A
/// route added here must be listed the same way, so that `tests/authz_audit.rs` checks it.
pub fn build_http(state: &AppState) -> Router {
    build_http_with_registry(state).0
}

/// Like [`build_http`], also returning the CometD session registry.
fn build_http_with_registry(state: &AppState) -> (Router, Arc<gws::cometd::BayeuxRegistry>) {
    let (gws, registry) = gws::router_with_registry(state.clone());
    let router = Router::new()
        .route(HEALTH_PATH, axum::routing::get(http_health))
        .merge(gws)
        .merge(desktop::router(&state.config.desktop));
    (router, registry)
}

async fn http_health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "serving" }))
}

/// Serves the gateway until `shutdown` is cancelled, then drains ([`server`]): stops
/// accepting, ends streams and long-polls with where to resume, and returns once in-flight
/// requests have finished, or `server.shutdown_grace_ms` after `shutdown` with the
/// connections still open cut. TLS is loaded from `config.tls` first (see
/// [`run_with_tls`]).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tls = ServerTls::from_config(&config, listeners.http.is_none())?;
    run_with_tls(config, tls, listeners, shutdown).await
}

/// Like [`run`], with the TLS already loaded by [`ServerTls::from_config`] (the binary
/// loads it before binding, so a bad certificate stops it before any listener exists).
pub async fn run_with_tls(
    config: Config,
    tls: ServerTls,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_admin(config, tls, listeners, admin::Readiness::new(), shutdown).await
}

/// Like [`run_with_tls`], reporting into `readiness` (which the admin listener serves) once
/// the listeners serve. Every request of both fronts runs the [`admin::layer`] stack.
pub async fn run_with_admin(
    config: Config,
    tls: ServerTls,
    listeners: Listeners,
    readiness: Arc<admin::Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Gateway::build(config, &tls, &listeners, shutdown)
        .await?
        .serve(tls, listeners, readiness)
        .await
}

/// A gateway built over its listeners but not serving yet: the two halves of
/// [`run_with_admin`], apart so that a test can hold the state and the CometD sessions of
/// the gateway it serves exactly as the binary does.
pub struct Gateway {
    /// The state every front shares.
    pub state: AppState,
    /// The CometD sessions of the HTTP side.
    pub registry: Arc<gws::cometd::BayeuxRegistry>,
    grpc: tonic::service::Routes,
    http: Router,
    /// Cluster mode: this instance's membership, whose leases the drain releases first.
    cluster: Option<Arc<cluster::node::ClusterNode>>,
}

impl Gateway {
    /// Checks the configuration against the listeners (warning about clear text) and builds
    /// the state and both fronts' routes; `shutdown` ends what [`Self::serve`] serves.
    pub async fn build(
        config: Config,
        tls: &ServerTls,
        listeners: &Listeners,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        Self::build_in(config, tls, listeners, shutdown, None).await
    }

    /// Like [`Self::build`], a member of the cluster whose engine is `engine` (bridge mode
    /// only): the way tests and demos share one in-memory engine between gateways of one
    /// process ([`cluster::Engine::memory`]), which no URL names.
    pub async fn build_in_cluster(
        config: Config,
        tls: &ServerTls,
        listeners: &Listeners,
        shutdown: CancellationToken,
        engine: cluster::Engine,
    ) -> anyhow::Result<Self> {
        Self::build_in(config, tls, listeners, shutdown, Some(engine)).await
    }

    async fn build_in(
        config: Config,
        tls: &ServerTls,
        listeners: &Listeners,
        shutdown: CancellationToken,
        engine: Option<cluster::Engine>,
    ) -> anyhow::Result<Self> {
        warn_clear_listeners(&config, tls, listeners);
        config.desktop.validate().map_err(anyhow::Error::msg)?;
        let wait = config.cluster.lease_ttl();
        let (state, node) = build_state_in(config, shutdown, engine)?;
        if let Some(node) = &node {
            // The log here takes the shared log's epoch and catches up before any watch
            // opens (bounded: with the engine down, the tail carries on by itself).
            node.caught_up_at_start(wait).await;
        }
        let grpc = grpc::routes(&state).await;
        let (http, registry) = build_http_with_registry(&state);
        Ok(Self {
            state,
            registry,
            grpc,
            http,
            cluster: node,
        })
    }

    /// Serves `listeners` until the state's shutdown token is cancelled, reporting into
    /// `readiness` once they serve; then drains ([`server`]) and returns, at the latest
    /// `server.shutdown_grace_ms` after the shutdown.
    pub async fn serve(
        self,
        tls: ServerTls,
        listeners: Listeners,
        readiness: Arc<admin::Readiness>,
    ) -> anyhow::Result<()> {
        let Self {
            state,
            grpc,
            http,
            cluster,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        // Cluster mode: the drain starts by handing the users over (their leases released,
        // so another instance takes each over at its next retry), and the gateway does not
        // stop before that is done.
        let hand_off = cluster.map(|node| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                node.release_all().await;
            })
        });
        let layers = admin::layer::request_layers(admin::layer::RequestMetricsLayer::new(
            grpc::method_paths(),
        ));
        let not_found = || async { (axum::http::StatusCode::NOT_FOUND, "not found") };
        readiness.serving(state.core.clone());
        let limits = state.config.server.clone();
        let (drain, _stop_timer) = server::Drain::new(shutdown, limits.shutdown_grace());
        let admission: Arc<dyn server::Admission> = Arc::new(FrontsAdmission::new(&limits));
        let served = match listeners.http {
            None => {
                let app = http
                    .merge(grpc.into_axum_router())
                    .fallback(not_found)
                    .layer(layers);
                let listener = server::Listener {
                    tcp: listeners.grpc,
                    tls: tls.http.map_or(ListenerTls::Plain, ListenerTls::Http),
                    http2_only: false,
                };
                server::serve(listener, app, admission, &limits, drain.clone()).await
            }
            Some(http_listener) => {
                // The gRPC routes alone, HTTP/2 only; unknown methods get UNIMPLEMENTED.
                let grpc_app = grpc.into_axum_router().layer(layers.clone());
                let grpc_listener = server::Listener {
                    tcp: listeners.grpc,
                    tls: tls.grpc.map_or(ListenerTls::Plain, ListenerTls::Grpc),
                    http2_only: true,
                };
                let grpc_server = server::serve(
                    grpc_listener,
                    grpc_app,
                    admission.clone(),
                    &limits,
                    drain.clone(),
                );
                let http = http.fallback(not_found).layer(layers);
                let http_listener = server::Listener {
                    tcp: http_listener,
                    tls: tls.http.map_or(ListenerTls::Plain, ListenerTls::Http),
                    http2_only: false,
                };
                let http_server =
                    server::serve(http_listener, http, admission, &limits, drain.clone());
                let (a, b) = tokio::join!(grpc_server, http_server);
                a.and(b)
            }
        };
        if let Some(hand_off) = hand_off {
            tokio::select! {
                _ = hand_off => {}
                () = drain.cut.cancelled() => tracing::warn!("shutdown grace over: leases left to lapse"),
            }
        }
        // The WebSockets answer their held connect and close on `shutdown`; until the cut.
        state.upgraded.close();
        tokio::select! {
            () = state.upgraded.wait() => {}
            () = drain.cut.cancelled() => {
                tracing::warn!(open = state.upgraded.len(), "shutdown grace over: WebSockets cut");
            }
        }
        served
    }
}

/// The fronts' side of the bounds on requests in flight ([`crate::shed`]): gRPC calls count,
/// health checks not (a load balancer's probe must be answered when the gateway is
/// overloaded); JSON API requests count, the CometD endpoint not (a held connect is not
/// work in flight; the `[cometd]` bounds hold there). A refusal is gRPC
/// `RESOURCE_EXHAUSTED` or the JSON API's 503 `{"statusCode":4}`. It is answered before
/// routing, so without the request layers (request id, request metrics, CORS headers: a
/// browser on another origin sees a network error); `requests_shed_total` counts it.
#[derive(Debug)]
struct FrontsAdmission {
    /// The head of a gRPC refusal at the listener's bound and at a connection's, built once:
    /// formatting and percent-encoding `grpc-message` for every refusal was a fifth of the
    /// instructions a refusal cost (bench/FINDINGS.md, "Session 8"), and a refusal must be
    /// cheap exactly when the gateway has no CPU to spare.
    grpc_refusals: [(shed::Refused, axum::http::HeaderMap); 2],
}

impl FrontsAdmission {
    fn new(limits: &server::ServerConfig) -> Self {
        let head = |scope, limit| {
            let refused = shed::Refused { scope, limit };
            (
                refused,
                tonic::Status::from(refused)
                    .into_http::<axum::body::Body>()
                    .into_parts()
                    .0
                    .headers,
            )
        };
        Self {
            grpc_refusals: [
                head(shed::Scope::Listener, limits.max_requests),
                head(shed::Scope::Connection, limits.max_requests_per_connection),
            ],
        }
    }

    fn is_grpc<B>(request: &axum::http::Request<B>) -> bool {
        request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
    }

    /// Answers a gRPC request refused by `refused`: trailers-only, `RESOURCE_EXHAUSTED`.
    fn refuse_grpc(&self, refused: shed::Refused) -> axum::response::Response {
        match self.grpc_refusals.iter().find(|(r, _)| *r == refused) {
            Some((_, headers)) => {
                let mut response = axum::response::Response::new(axum::body::Body::empty());
                *response.headers_mut() = headers.clone();
                response
            }
            None => tonic::Status::from(refused).into_http(),
        }
    }
}

impl server::Admission for FrontsAdmission {
    fn counts(&self, request: &axum::http::Request<hyper::body::Incoming>) -> bool {
        let path = request.uri().path();
        if Self::is_grpc(request) {
            !path.starts_with(grpc::HEALTH_PREFIX)
        } else {
            path.starts_with("/api/") && !path.starts_with(gws::cometd::NOTIFICATIONS_PATH)
        }
    }

    fn refuse(
        &self,
        request: &axum::http::Request<hyper::body::Incoming>,
        refused: shed::Refused,
    ) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        if Self::is_grpc(request) {
            self.refuse_grpc(refused)
        } else {
            gws::json::LegacyError::Overloaded(refused).into_response()
        }
    }
}

/// Warns for each listener serving plain text on a non-loopback address with credentials
/// configured ([`tls::warn_if_clear`]).
fn warn_clear_listeners(config: &Config, tls: &ServerTls, listeners: &Listeners) {
    let credentials = config.has_credentials();
    let warn = |name: &str, listener: &TcpListener, on: bool| {
        if let Ok(addr) = listener.local_addr() {
            tls::warn_if_clear(name, addr, on, credentials);
        }
    };
    match &listeners.http {
        None => warn("grpc+http", &listeners.grpc, tls.http.is_some()),
        Some(http) => {
            warn("grpc", &listeners.grpc, tls.grpc.is_some());
            warn("http", http, tls.http.is_some());
        }
    }
}
